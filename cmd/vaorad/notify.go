package main

// systemd's notify protocol (sd_notify(3)), spoken directly: one datagram per message on the unix socket named by
// NOTIFY_SOCKET. Twenty lines of our own instead of a module: nothing else of systemd's library is needed.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// notifier sends one sd_notify message, e.g. "READY=1" or "STATUS=pending=3".
type notifier interface {
	Notify(state string) error
}

// sdNotify is the socket systemd gave us.
type sdNotify struct {
	conn *net.UnixConn
}

// openNotify connects to $NOTIFY_SOCKET; nil when it is unset (not started by systemd with Type=notify). A socket
// that is set but cannot be reached is an error: systemd would kill a daemon that never says READY.
func openNotify() (*sdNotify, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	addr := &net.UnixAddr{Name: path, Net: "unixgram"}
	if path[0] == '@' { // an abstract socket
		addr.Name = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%s: %w (is this the socket systemd set for the unit?)", path, err)
	}
	return &sdNotify{conn: conn}, nil
}

func (n *sdNotify) Notify(state string) error {
	_, err := n.conn.Write([]byte(state))
	return err
}

func (n *sdNotify) Close() error { return n.conn.Close() }

// watchdogInterval is WATCHDOG_USEC, when systemd asks this process (WATCHDOG_PID unset or ours) to ping.
func watchdogInterval() (time.Duration, bool) {
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0, false
	}
	return time.Duration(us) * time.Microsecond, true
}

// supervise tells systemd how vaorad is: READY=1 at once (the caller has opened the outbox and the sources), a
// STATUS= line every statusEvery, WATCHDOG=1 every half watchdog interval while check reports the scan loop and the
// store healthy (never the network), and STOPPING=1 when ctx ends. With n nil it only keeps the health state fresh
// for the status socket and the metrics.
func supervise(ctx context.Context, n notifier, m *monitor, watchdog time.Duration, statusEvery time.Duration, log *slog.Logger) error {
	send := func(state string) {
		if n == nil {
			return
		}
		if err := n.Notify(state); err != nil {
			log.Warn("telling systemd", "message", state, "err", err)
		}
	}
	m.check(ctx)
	send("READY=1\nSTATUS=" + m.statusLine())
	status := time.NewTicker(statusEvery)
	defer status.Stop()
	var wd <-chan time.Time
	if watchdog > 0 {
		t := time.NewTicker(watchdog / 2)
		defer t.Stop()
		wd = t.C
		log.Info("systemd watchdog on", "interval", watchdog, "ping_every", watchdog/2)
	}
	for {
		select {
		case <-ctx.Done():
			send("STOPPING=1")
			return nil
		case <-status.C:
			m.check(ctx)
			send("STATUS=" + m.statusLine())
		case <-wd:
			if err := m.check(ctx); err != nil {
				// systemd restarts vaorad once the interval passes without a ping: the journal says why.
				log.Error("watchdog ping withheld: vaorad is not healthy", "err", err)
				continue
			}
			send("WATCHDOG=1")
		}
	}
}

// notifyBlank tells systemd about a blank device waiting for its enrolment code: READY=1 at once (else systemd would
// kill it for never starting), a STATUS= saying so, and WATCHDOG=1 while it waits (there is no scan loop or store
// yet to watch). The returned stop sends STOPPING=1.
func notifyBlank(ctx context.Context, log *slog.Logger) (stop func()) {
	n, err := openNotify()
	if err != nil {
		log.Error("systemd notify socket", "err", err)
		return func() {}
	}
	if n == nil {
		return func() {}
	}
	n.Notify("READY=1\nSTATUS=blank device: waiting for an enrolment code (vaoractl provision)")
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wd, ok := watchdogInterval()
		if !ok {
			<-ctx.Done()
			return
		}
		t := time.NewTicker(wd / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.Notify("WATCHDOG=1")
			}
		}
	}()
	return func() {
		cancel()
		<-done
		n.Notify("STOPPING=1")
		n.Close()
	}
}
