package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "hub.yaml")
	os.WriteFile(bad, []byte("http: 127.0.0.1:0\nshare_group: a/b\n"), 0o600)
	enrolBad := filepath.Join(dir, "enrol.yaml")
	os.WriteFile(enrolBad, []byte("enrol:\n  listen: https://hub:8443\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"both brokers", []string{"--broker", "tcp://127.0.0.1:1883", "--mqtt-listen", "127.0.0.1:0"}, "exclude each other"},
		{"bad config", []string{"--config", bad}, "hub.yaml:2: share_group"},
		{"bad flag", []string{"--nope"}, "nope"},
		{"bad db scheme", []string{"--db", "mysql://x"}, "db"},
		{"bad log level", []string{"--log-level", "loud", "--db", "sqlite:" + filepath.Join(dir, "x.db")}, "log-level"},
		{"stray argument", []string{"serve"}, "serve"},
		{"no ingest lanes", []string{"--ingest-lanes", "0"}, "--ingest-lanes 0: want 1..64"},
		{"enrol without brokers", []string{"--enrol-listen", ":0"}, "enrol.brokers: empty, but enrol.listen is set"},
		{"bad broker auth", []string{"--broker-auth", "closed"}, `broker_auth: "closed": write open`},
		{"account on the embedded broker", []string{"--broker-user", "hub", "--broker-password-file", "/x"}, "broker_user: the hub's account at an external broker"},
		{"enrol config without brokers", []string{"--config", enrolBad}, "enrol.yaml:2: enrol.listen: "},
		{"refresh password too often", []string{"--enrol-password-max-age", "1m"}, "enrol.password_max_age: 1m0s is out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			err := run(tc.args, io.Discard, &stderr)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error()+stderr.String(), tc.want) {
				t.Fatalf("err = %v (stderr %q), want a usage error naming %q", err, stderr.String(), tc.want)
			}
		})
	}
	if err := run([]string{"-h"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("-h: %v", err)
	}
}
