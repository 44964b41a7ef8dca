package vaora

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/vaora/vaora/"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// hardware is code that talks to devices the hub never has.
var hardware = []string{
	"github.com/blackjack/webcam", "go.bug.st/serial", "periph.io/",
	mod + "scanner/camera", mod + "scanner/handheld", mod + "scanner/feedback",
}

// impure is what a pure package (formats, wire, decision) must not reach: network, storage, processes.
var impure = []string{"net", "database/sql", "go.etcd.io/bbolt", "github.com/eclipse/paho.mqtt.golang",
	"github.com/mochi-mqtt/", "os/exec", "github.com/jackc/pgx", "modernc.org/sqlite"}

var pure = []string{mod + "scanner/payload", mod + "scanner/decide", mod + "sync/wire", mod + "scanner/stoplist",
	mod + "scanner/subject"}

func has(list []string, prefix string) (string, bool) {
	for _, p := range list {
		if p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/") {
			return p, true
		}
	}
	return "", false
}

func under(path, dir string) bool { return path == mod+dir || strings.HasPrefix(path, mod+dir+"/") }

// violations applies the layout's import rules to a package graph.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		for _, d := range p.Imports {
			if under(d, "cmd") {
				out = append(out, p.ImportPath+" imports "+d+": nothing imports cmd/")
			}
		}
		if under(p.ImportPath, "scanner") {
			if d, ok := has(p.Deps, mod+"sync"); ok {
				out = append(out, p.ImportPath+" depends on "+d+": scanner/ and sync/ meet only in cmd/")
			}
		}
		if under(p.ImportPath, "sync") {
			if d, ok := has(p.Deps, mod+"scanner"); ok {
				out = append(out, p.ImportPath+" depends on "+d+": scanner/ and sync/ meet only in cmd/")
			}
		}
		if under(p.ImportPath, "hub") || under(p.ImportPath, "cmd/vaorahub") {
			for _, h := range hardware {
				if d, ok := has(p.Deps, h); ok {
					out = append(out, p.ImportPath+" depends on "+d+": the hub pulls in no hardware code")
				}
			}
		}
		for _, pp := range pure {
			if p.ImportPath != pp {
				continue
			}
			for _, bad := range impure {
				if d, ok := has(p.Deps, bad); ok {
					out = append(out, p.ImportPath+" depends on "+d+": a pure package has no network, storage or processes")
				}
			}
			for _, bad := range []string{"os", "syscall", "golang.org/x/sys/unix"} {
				for _, d := range p.Imports {
					if d == bad {
						out = append(out, p.ImportPath+" imports "+d+": a pure package does no I/O")
					}
				}
			}
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Imports,Deps", "./...")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("go list: %v\n%s", err, ee.Stderr)
	} else if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.ImportPath] = true
		if p.ImportPath == mod+"cmd/vaorad" {
			if _, ok := has(p.Deps, "go.etcd.io/bbolt"); !ok {
				t.Fatal("go list reported no transitive deps for cmd/vaorad: the rules would check nothing")
			}
		}
	}
	for _, want := range append([]string{mod + "cmd/vaorad", mod + "cmd/vaorahub", mod + "hub/web"}, pure...) {
		if !seen[want] {
			t.Fatalf("go list did not report %s: the rules would check nothing", want)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestImportRulesCatch proves each rule fires on a graph that breaks it.
func TestImportRulesCatch(t *testing.T) {
	bad := []pkg{
		{ImportPath: mod + "scanner/gate", Deps: []string{mod + "sync/outbox"}},
		{ImportPath: mod + "sync/uplink", Deps: []string{mod + "scanner/payload"}},
		{ImportPath: mod + "hub/web", Deps: []string{"go.bug.st/serial"}},
		{ImportPath: mod + "cmd/vaorahub", Deps: []string{mod + "scanner/camera"}},
		{ImportPath: mod + "scanner/payload", Imports: []string{"os"}, Deps: []string{"net"}},
		{ImportPath: mod + "sync/wire", Deps: []string{"go.etcd.io/bbolt"}},
		{ImportPath: mod + "hub/store", Imports: []string{mod + "cmd/vaorad"}},
	}
	if got := violations(bad); len(got) != 8 {
		t.Fatalf("%d violations found, want 8:\n%s", len(got), strings.Join(got, "\n"))
	}
	good := []pkg{{ImportPath: mod + "hub/web", Deps: []string{mod + "sync/wire", "net/http", "network-free"}}}
	if got := violations(good); len(got) != 0 {
		t.Fatalf("false alarms: %v", got)
	}
}
