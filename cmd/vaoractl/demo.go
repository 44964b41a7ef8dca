package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/seal"
)

// demo starts vaorahub (embedded broker, SQLite) on free ports and one vaorad reading this terminal, and stops both
// on Ctrl-C. Logs go to files in the demo directory so the terminal shows only what a guard would see.
func demo(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaoractl demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "directory holding vaorad and vaorahub (default: next to vaoractl)")
	dir := fs.String("dir", ".demo", "directory for the demo's database, outbox and logs")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *bin == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		*bin = filepath.Dir(self)
	}
	for _, name := range []string{"vaorad", "vaorahub"} {
		if _, err := os.Stat(filepath.Join(*bin, name)); err != nil {
			return usageError{fmt.Errorf("%s not found in %s: run `make build` first, or pass --bin", name, *bin)}
		}
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	*dir = abs
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	// One key set for the demo's hub and reader, made on the first run (an installation keeps the hub's private
	// keys on the hub: docs/keys.md).
	keys := filepath.Join(*dir, "keys")
	if _, err := os.Stat(filepath.Join(keys, "service.key")); errors.Is(err, iofs.ErrNotExist) {
		if err := keysInit(keys, io.Discard); err != nil {
			return fmt.Errorf("demo keys: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	hubLog, err := os.OpenFile(filepath.Join(*dir, "hub.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer hubLog.Close()
	hub := exec.Command(filepath.Join(*bin, "vaorahub"), "--http", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0",
		"--db", "sqlite:"+filepath.Join(*dir, "hub.db"), "--worker-id", "demo", "--keys", keys)
	hub.Stderr = hubLog
	hubOut, err := hub.StdoutPipe()
	if err != nil {
		return err
	}
	if err := hub.Start(); err != nil {
		return fmt.Errorf("start vaorahub: %w", err)
	}
	hubDone := waitChild(hub)
	defer stopChild(hub, hubDone)

	var hubURL, brokerURL string
	lines := bufio.NewScanner(hubOut)
	for (hubURL == "" || brokerURL == "") && lines.Scan() {
		if v, ok := strings.CutPrefix(lines.Text(), "vaora hub: "); ok {
			hubURL = v
		}
		if v, ok := strings.CutPrefix(lines.Text(), "broker: "); ok {
			brokerURL = v
		}
	}
	if hubURL == "" || brokerURL == "" {
		return fmt.Errorf("vaorahub did not start: see %s", filepath.Join(*dir, "hub.log"))
	}
	go io.Copy(io.Discard, hubOut)

	devLog, err := os.OpenFile(filepath.Join(*dir, "device.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer devLog.Close()
	kioskAddr, err := freeAddr()
	if err != nil {
		return err
	}
	pass, err := demoPass(keys)
	if err != nil {
		return fmt.Errorf("demo pass: %w", err)
	}
	dev := exec.Command(filepath.Join(*bin, "vaorad"), "--device-id", "demo-gate", "--broker", brokerURL,
		"--state-dir", filepath.Join(*dir, "device"), "--input", "stdin", "--keys", keys, "--kiosk", kioskAddr)
	dev.Stdin, dev.Stdout, dev.Stderr = stdin, stdout, devLog
	if err := dev.Start(); err != nil {
		return fmt.Errorf("start vaorad: %w", err)
	}
	devDone := waitChild(dev)
	defer stopChild(dev, devDone)

	fmt.Fprintf(stdout, `
vaora demo
  hub:     %s   (open it in a browser)
  kiosk:   http://%s/   (the gate's screen)
  broker:  %s
  logs:    %s/hub.log, %s/device.log

Scan with a USB reader in keyboard mode, or paste a code and press Enter. What you paste is not echoed (a code
holds personal data); the line that answers shows only the masked name. Made-up codes for each colour:
  amber (a CCCD card: identity claimed, not verified):
    001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021
  blue (the same card again within 5 minutes: already in): paste it twice
  green (a vaora pass signed by this demo's issuer key):
    %s
  red (not a personal code):
    https://tokhaiyte.vn/?page=Group.checkin&groupId=12345
Ctrl-C stops the demo.

`, hubURL, kioskAddr, brokerURL, *dir, *dir, pass)

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nstopping the demo…")
		return nil
	case <-hubDone:
		return fmt.Errorf("vaorahub exited unexpectedly: see %s", filepath.Join(*dir, "hub.log"))
	case <-devDone:
		return fmt.Errorf("vaorad exited unexpectedly: see %s", filepath.Join(*dir, "device.log"))
	}
}

func waitChild(c *exec.Cmd) <-chan struct{} {
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	return done
}

// stopChild asks a child to stop (SIGTERM: vaorad loses nothing accepted) and kills it if it does not.
func stopChild(c *exec.Cmd, done <-chan struct{}) {
	c.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
	}
}

// freeAddr picks a free loopback port for the kiosk page (the demo prints it before vaorad starts).
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// demoPass signs a vaora pass for a made-up person with the demo's issuer key, valid for a day.
func demoPass(keys string) (string, error) {
	k, err := seal.ReadKeyFile(filepath.Join(keys, "issuer.key"))
	if err != nil {
		return "", err
	}
	priv, err := k.Ed25519Private()
	if err != nil {
		return "", err
	}
	sk, err := subjectOf("001099000001", "cccd", filepath.Join(keys, "subject.key"))
	if err != nil {
		return "", err
	}
	subj, err := subject.ParseKey(sk)
	if err != nil {
		return "", err
	}
	now := time.Now()
	return payload.IssuePass(priv, k.ID, payload.Pass{SubjectKey: subj, Name: "Phạm Văn Khách", Issued: now,
		Expires: now.Add(24 * time.Hour), Status: payload.PassStatusDeclaredHealthy})
}
