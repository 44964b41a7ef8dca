package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/feedback"
	"github.com/vaora/vaora/scanner/gate"
)

// feedbacks shows each outcome on every output in turn; each returns at once (none waits on a screen or a network).
type feedbacks []gate.Feedback

func (f feedbacks) Show(o gate.Outcome) {
	for _, x := range f {
		x.Show(o)
	}
}

// kioskPage listens for the kiosk page and returns it and the function that serves it until its ctx ends. It announces the page's address on the guard's terminal (out) and
// in the log; a port already taken is a usage error (exit 2: another vaorad, or the wrong kiosk.listen).
func kioskPage(c configs.Kiosk, device, direction string, out io.Writer, log *slog.Logger) (*feedback.Kiosk, func(context.Context) error, error) {
	opts := feedback.KioskOptions{Device: device, Notice: c.Notice, Log: log}
	if direction == "toggle" {
		opts.Direction = "in" // as the gate starts; the page follows the guard's changes
	}
	k := feedback.NewKiosk(opts)
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("kiosk.listen %s: %w (is another vaorad running? choose another address)", c.Listen, err)}
	}
	srv := &http.Server{Handler: k, ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(out, "kiosk: %s\n", url)
	log.Info("kiosk page", "url", url)
	serve := func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			k.Close() // ends the event streams, so Shutdown does not wait on them
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("kiosk page: %w", err)
		}
		return nil
	}
	return k, serve, nil
}
