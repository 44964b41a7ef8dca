package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// daemonStatus is what vaorad's control socket answers on GET /status (cmd/vaorad/health.go, report).
type daemonStatus struct {
	Device          string            `json:"device"`
	Version         string            `json:"version"`
	Started         time.Time         `json:"started"`
	UptimeS         float64           `json:"uptime_s"`
	Healthy         bool              `json:"healthy"`
	Problem         string            `json:"problem"`
	Pending         int               `json:"pending"`
	OldestUnsyncedS *float64          `json:"oldest_unsynced_s"`
	MQTT            string            `json:"mqtt"`
	LastScanS       *float64          `json:"last_scan_s"`
	Scans           map[string]uint64 `json:"scans"`
	StopList        struct {
		Version uint64   `json:"version"`
		Keys    int      `json:"keys"`
		AgeS    *float64 `json:"age_s"`
	} `json:"stop_list"`
	ConfigVersion uint64 `json:"config_version"`
	Storage       struct {
		Level       int      `json:"level"`
		LiveBytes   int64    `json:"live_bytes"`
		Budget      int64    `json:"budget"`
		FileBytes   int64    `json:"file_bytes"`
		FullPolicy  string   `json:"full_policy"`
		Quarantined []string `json:"quarantined"`
	} `json:"storage"`
	Clock struct {
		Synced bool   `json:"synced"`
		BootID string `json:"boot_id"`
	} `json:"clock"`
	Inputs []struct {
		Name   string    `json:"name"`
		State  string    `json:"state"`
		Since  time.Time `json:"since"`
		Reads  uint64    `json:"reads"`
		Frames *uint64   `json:"frames"`
	} `json:"inputs"`
}

// statusCmd asks the running vaorad over its control socket and prints what it says.
func statusCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaoractl status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("control", "/run/vaora/vaorad.sock", "vaorad's control socket (its control.socket)")
	asJSON := fs.Bool("json", false, "print the daemon's answer as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("status: unexpected argument %q", fs.Arg(0))}
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", *socket)
		}}}
	resp, err := client.Get("http://vaorad/status")
	if err != nil {
		return fmt.Errorf("asking vaorad on %s: %w (is vaorad running? `systemctl status vaorad`; are you root or in the vaora group?)", *socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading vaorad's answer on %s: %w", *socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("vaorad on %s answered %s: %s", *socket, resp.Status, bytes.TrimSpace(body))
	}
	var st daemonStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("vaorad on %s answered what is not its status: %w", *socket, err)
	}
	if *asJSON {
		var out bytes.Buffer
		json.Indent(&out, body, "", "  ")
		_, err := stdout.Write(out.Bytes())
		return err
	}
	printStatus(stdout, st)
	return nil
}

func printStatus(w io.Writer, st daemonStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	age := func(s *float64) string {
		return (time.Duration(*s * float64(time.Second))).Round(time.Second).String()
	}
	line("device", "%s", st.Device)
	line("version", "%s", st.Version)
	line("uptime", "%s (since %s)", age(&st.UptimeS), st.Started.Local().Format(time.RFC3339))
	if st.Healthy {
		line("health", "ok")
	} else {
		line("health", "UNHEALTHY: %s", st.Problem)
	}
	if st.OldestUnsyncedS != nil {
		line("pending", "%d (oldest %s old)", st.Pending, age(st.OldestUnsyncedS))
	} else {
		line("pending", "%d", st.Pending)
	}
	line("mqtt", "%s", st.MQTT)
	if st.LastScanS != nil {
		line("last scan", "%s ago", age(st.LastScanS))
	} else {
		line("last scan", "none since start")
	}
	var scans []string
	for k, v := range st.Scans {
		scans = append(scans, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(scans)
	if len(scans) == 0 {
		scans = []string{"none"}
	}
	line("scans", "%s", strings.Join(scans, ", "))
	if st.StopList.Version > 0 && st.StopList.AgeS != nil {
		line("stop list", "version %d, %d keys, issued %s ago", st.StopList.Version, st.StopList.Keys, age(st.StopList.AgeS))
	} else {
		line("stop list", "none received")
	}
	if st.ConfigVersion > 0 {
		line("hub config", "version %d", st.ConfigVersion)
	} else {
		line("hub config", "none (local config in force)")
	}
	budget := "no budget"
	if st.Storage.Budget > 0 {
		budget = fmt.Sprintf("of %s budget", bytesText(st.Storage.Budget))
	}
	line("storage", "level %d%%: %s %s (file %s), when full: %s", st.Storage.Level, bytesText(st.Storage.LiveBytes),
		budget, bytesText(st.Storage.FileBytes), st.Storage.FullPolicy)
	if len(st.Storage.Quarantined) > 0 {
		line("quarantined", "%s (vaoractl outbox salvage)", strings.Join(st.Storage.Quarantined, ", "))
	}
	if st.Clock.Synced {
		line("clock", "synchronised (boot %s)", st.Clock.BootID)
	} else {
		line("clock", "NOT synchronised (boot %s): entries are marked so", st.Clock.BootID)
	}
	for _, in := range st.Inputs {
		s := fmt.Sprintf("%s since %s, %d reads", in.State, in.Since.Local().Format(time.TimeOnly), in.Reads)
		if in.Frames != nil {
			s += fmt.Sprintf(", %d frames", *in.Frames)
		}
		line("input "+in.Name, "%s", s)
	}
	tw.Flush()
}

// bytesText writes a size for people: 1.5 MiB.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
