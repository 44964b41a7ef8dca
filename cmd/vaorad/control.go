package main

// The control socket: plain HTTP on a unix socket, so `vaoractl status` and
// `curl --unix-socket /run/vaora/vaorad.sock http://vaorad/status` both work. Only GET; nothing here changes state.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// controlServer listens on the unix socket at path (mode 0660: root and the vaora group) and returns the function
// that serves it until ctx ends, or nil when the socket is off. A socket left by a vaorad that died is replaced; one
// a running vaorad answers on is a usage error. The default path's directory missing (vaorad not run by systemd,
// which makes /run/vaora) turns the socket off with a warning: the gate must scan all the same.
func controlServer(path string, isDefault bool, m *monitor, log *slog.Logger) (func(context.Context) error, error) {
	if path == "" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil && isDefault {
		log.Warn("control socket off: its directory is missing (systemd makes it: RuntimeDirectory=vaora; or set control.socket or --control)",
			"socket", path, "err", err)
		return nil, nil
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, usageError{fmt.Errorf("control.socket %s: another vaorad answers on it; stop it or choose another socket", path)}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, usageError{fmt.Errorf("control.socket %s: removing the old socket: %w", path, err)}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, usageError{fmt.Errorf("control.socket %s: %w (does the directory exist and may vaorad write in it?)", path, err)}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control.socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		m.check(r.Context()) // fresh figures: the oldest entry, the inputs' loops
		enc.Encode(m.report())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.writeMetrics(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("control socket", "socket", path)
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx) // closes the listener, which removes the socket file
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("control socket %s: %w", path, err)
		}
		return nil
	}, nil
}
