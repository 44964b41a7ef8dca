package main

// Prometheus metrics in the text exposition format (version 0.0.4), written by hand: a dozen gauges and counters do
// not need client_golang, whose registry and protobuf code would add megabytes to a Pi binary with a 20 MB goal.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vaora/vaora/scanner/camera"
)

// promWriter writes metric families; each family's HELP and TYPE come once, before its samples.
type promWriter struct {
	w   io.Writer
	err error
}

func (p *promWriter) family(name, typ, help string) {
	p.printf("# HELP %s %s\n# TYPE %s %s\n", name, strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help), name, typ)
}

// sample writes one sample; labels are name, value pairs.
func (p *promWriter) sample(name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	p.printf("%s %s\n", b.String(), formatFloat(v))
}

func (p *promWriter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeMetrics writes every metric of m.
func (m *monitor) writeMetrics(w io.Writer) error {
	p := &promWriter{w: w}
	now := m.now()
	st := m.ob.Stats()

	p.family("vaora_build_info", "gauge", "The vaorad build; the value is always 1.")
	p.sample("vaora_build_info", 1, "version", m.version, "device", m.device)
	p.family("vaora_start_time_seconds", "gauge", "When vaorad started, in seconds since the epoch.")
	p.sample("vaora_start_time_seconds", float64(m.started.UnixNano())/1e9)

	p.family("vaora_scans_total", "counter", "Codes taken through the gate since start, by result (accepted, rejected, fault) and colour.")
	counts := m.scanCounts()
	for _, r := range []string{"accepted", "rejected", "fault"} {
		for _, s := range scanStates {
			counts[[2]string{r, string(s)}] += 0 // every usual series is there from the start
		}
	}
	keys := make([][2]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	for _, k := range keys {
		p.sample("vaora_scans_total", float64(counts[k]), "result", k[0], "state", k[1])
	}
	p.family("vaora_last_scan_timestamp_seconds", "gauge", "When the last code was taken through the gate (0: none since start).")
	if t := m.lastScan.Load(); t > 0 {
		p.sample("vaora_last_scan_timestamp_seconds", float64(t)/1e9)
	} else {
		p.sample("vaora_last_scan_timestamp_seconds", 0)
	}

	if len(m.cams) > 0 {
		stats := make([]camera.Stats, len(m.cams))
		for i, c := range m.cams {
			stats[i] = c.stats()
		}
		p.family("vaora_camera_frames_total", "counter", "Frames read from a camera input.")
		for i, c := range m.cams {
			p.sample("vaora_camera_frames_total", float64(stats[i].Frames), "input", c.input)
		}
		p.family("vaora_camera_dropped_frames_total", "counter", "Frames replaced by a newer one before the decoder took them.")
		for i, c := range m.cams {
			p.sample("vaora_camera_dropped_frames_total", float64(stats[i].Dropped), "input", c.input)
		}
		p.family("vaora_decode_seconds", "histogram", "Time the QR decoder spent on one camera frame.")
		for i, c := range m.cams {
			var cum uint64
			for j, le := range camera.DecodeBounds {
				cum += stats[i].DecodeHist[j]
				p.sample("vaora_decode_seconds_bucket", float64(cum), "input", c.input, "le", formatFloat(le.Seconds()))
			}
			cum += stats[i].DecodeHist[len(camera.DecodeBounds)]
			p.sample("vaora_decode_seconds_bucket", float64(cum), "input", c.input, "le", "+Inf")
			p.sample("vaora_decode_seconds_sum", stats[i].DecodeSum.Seconds(), "input", c.input)
			p.sample("vaora_decode_seconds_count", float64(cum), "input", c.input)
		}
	}

	p.family("vaora_outbox_pending", "gauge", "Entries committed on the device and not yet acknowledged by the hub.")
	p.sample("vaora_outbox_pending", float64(st.Pending))
	m.mu.Lock()
	oldest, problem := m.oldest, m.problem
	m.mu.Unlock()
	p.family("vaora_outbox_oldest_unsynced_seconds", "gauge", "Age of the oldest entry not yet acknowledged by the hub, by its scan time (0: none waits).")
	if !oldest.IsZero() && st.Pending > 0 {
		p.sample("vaora_outbox_oldest_unsynced_seconds", math.Max(0, now.Sub(oldest).Seconds()))
	} else {
		p.sample("vaora_outbox_oldest_unsynced_seconds", 0)
	}
	p.family("vaora_storage_live_bytes", "gauge", "Bytes of the outbox that count against the storage budget.")
	p.sample("vaora_storage_live_bytes", float64(st.LiveBytes))
	p.family("vaora_storage_file_bytes", "gauge", "Size of the outbox file on disk.")
	p.sample("vaora_storage_file_bytes", float64(st.FileBytes))
	p.family("vaora_storage_budget_bytes", "gauge", "The storage budget (0: no limit).")
	p.sample("vaora_storage_budget_bytes", float64(st.Budget))
	p.family("vaora_storage_level_percent", "gauge", "Budget alarm level crossed: 0, 50, 80 or 100 (100: new entries are refused or admitted unrecorded).")
	p.sample("vaora_storage_level_percent", float64(st.Level))
	p.family("vaora_storage_quarantined_files", "gauge", "Damaged outbox files set aside, waiting for vaoractl outbox salvage.")
	p.sample("vaora_storage_quarantined_files", float64(len(st.Quarantined)))

	p.family("vaora_clock_synchronised", "gauge", "1 when the kernel reports the wall clock synchronised (NTP), else 0.")
	p.sample("vaora_clock_synchronised", b2f(m.synced()))
	p.family("vaora_mqtt_connected", "gauge", "1 while the uplink is connected to the broker.")
	p.sample("vaora_mqtt_connected", b2f(m.mqttState() == "online"))
	p.family("vaora_stoplist_version", "gauge", "Version of the stop list in force (0: none received).")
	v, issued, _, ok := m.stopList()
	p.sample("vaora_stoplist_version", float64(v))
	if ok {
		p.family("vaora_stoplist_age_seconds", "gauge", "Time since the hub issued the stop list in force.")
		p.sample("vaora_stoplist_age_seconds", now.Sub(issued).Seconds())
	}
	p.family("vaora_config_version", "gauge", "Version of the hub's device config in force (0: none).")
	p.sample("vaora_config_version", float64(m.configVersion()))
	p.family("vaora_healthy", "gauge", "1 when the scan loop and the store passed the last health check (what the systemd watchdog is fed on).")
	p.sample("vaora_healthy", b2f(problem == nil))
	return p.err
}

// metricsServer listens on addr and returns the function that serves /metrics until ctx ends. A taken port is a
// usage error (exit 2).
func metricsServer(addr string, m *monitor, log *slog.Logger) (func(context.Context) error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError{fmt.Errorf("metrics.listen %s: %w (is another vaorad running? choose another address)", addr, err)}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := m.writeMetrics(w); err != nil {
			log.Debug("writing metrics", "err", err)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics: %w", err)
		}
		return nil
	}, nil
}
