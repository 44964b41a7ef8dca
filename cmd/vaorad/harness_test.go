package main

// The system test harness: real vaorad and vaorahub binaries, built once, run as processes the way systemd runs
// them, talking over a real MQTT broker (the hub's embedded one, or Mosquitto when VAORA_TEST_MQTT is set).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/seal"
)

var binDir string

// keysDir holds one set of keys for every test's hub and readers: the hub takes service.key, a reader the .pub files
// and subject.key (the same split an installation makes across machines).
var keysDir string

func makeKeys(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, role := range seal.Roles {
		k, err := seal.Generate(role, rand.Reader, time.Now())
		if err != nil {
			return "", err
		}
		name := filepath.Join(dir, string(role))
		if role == seal.RoleSubject {
			err = seal.WriteKeyFile(name+".key", k, true)
		} else if err = seal.WriteKeyFile(name+".key", k, true); err == nil {
			err = seal.WriteKeyFile(name+".pub", k, false)
		}
		if err != nil {
			return "", err
		}
	}
	return dir, nil
}

// withKeys gives vaorad and vaorahub the test keys, unless the test names its own.
func withKeys(name string, args []string) []string {
	if (name != "vaorad" && name != "vaorahub") || slices.Contains(args, "--keys") {
		return args
	}
	return append([]string{"--keys", keysDir}, args...)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vaora-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../vaorad", "../vaorahub")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binaries: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = dir
	if keysDir, err = makeKeys(filepath.Join(dir, "keys")); err != nil {
		fmt.Fprintln(os.Stderr, "making the test keys:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running binary.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{}
	mu     sync.Mutex
	stderr strings.Builder
	stdout strings.Builder
	logs   chan map[string]any // decision log lines (vaorad)
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{}), logs: make(chan map[string]any, 10000)}
	p.cmd = exec.Command(filepath.Join(binDir, name), withKeys(name, args)...)
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	outR, _ := p.cmd.StdoutPipe()
	errR, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(errR)
		sc.Buffer(make([]byte, 64*1024), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "decision" {
				p.logs <- m
			}
		}
	}()
	go func() {
		wg.Wait()
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(p.Stderr()), "\n")
			t.Logf("%s stderr (last %d lines):\n%s", name, min(len(lines), 40), strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return p
}

func (p *proc) Stdout() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }
func (p *proc) Stderr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// stop sends SIGTERM and waits for the exit code.
func (p *proc) stop() int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Fatalf("%s did not stop within 15 s of SIGTERM", p.name)
	}
	return p.cmd.ProcessState.ExitCode()
}

// wait waits for the process to exit by itself.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s still running after %v", p.name, d)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) scan(text string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, text+"\n"); err != nil {
		p.t.Fatalf("write to %s: %v", p.name, err)
	}
}

func (p *proc) decision() map[string]any {
	p.t.Helper()
	select {
	case m := <-p.logs:
		return m
	case <-p.done:
		p.t.Fatalf("%s exited while a decision was awaited", p.name)
	case <-time.After(15 * time.Second):
		p.t.Fatalf("%s logged no decision within 15 s", p.name)
	}
	return nil
}

type hub struct {
	*proc
	url, broker string
}

// startHub runs vaorahub and waits for the addresses it prints.
func startHub(t *testing.T, args ...string) *hub {
	t.Helper()
	p := start(t, "vaorahub", append([]string{"--http", "127.0.0.1:0", "--log-level", "debug"}, args...)...)
	h := &hub{proc: p}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(p.Stdout(), "\n") {
			if v, ok := strings.CutPrefix(l, "vaora hub: "); ok {
				h.url = strings.TrimSuffix(v, "/")
			}
			if v, ok := strings.CutPrefix(l, "broker: "); ok {
				h.broker = v
			}
		}
		if h.url != "" && h.broker != "" {
			return h
		}
		select {
		case <-p.done:
			t.Fatalf("vaorahub exited: %s", p.Stderr())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("vaorahub printed no addresses within 20 s")
	return nil
}

type apiEntry struct {
	Device      string `json:"device"`
	Epoch       string `json:"epoch"`
	Seq         uint64 `json:"seq"`
	Direction   string `json:"direction"`
	Kind        string `json:"kind"`
	State       string `json:"state"`
	MaskedName  string `json:"masked_name"`
	ScannedAt   string `json:"scanned_at"`
	ReceivedAt  string `json:"received_at"`
	ClockSynced bool   `json:"clock_synced"`
}

func (h *hub) entries(t *testing.T) []apiEntry {
	t.Helper()
	resp, err := http.Get(h.url + "/api/entries?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Entries []apiEntry }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /api/entries: %d %v", resp.StatusCode, err)
	}
	return body.Entries
}

// waitEntries polls the hub until it lists n entries of device (or fails after d).
func (h *hub) waitEntries(t *testing.T, device string, n int, d time.Duration) []apiEntry {
	t.Helper()
	deadline := time.Now().Add(d)
	var got []apiEntry
	for {
		got = got[:0]
		for _, e := range h.entries(t) {
			if e.Device == device {
				got = append(got, e)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("hub lists %d entries of %s, want %d", len(got), device, n)
	}
	return got
}

// pendingInOutbox opens a stopped device's outbox and counts what it still holds.
func pendingInOutbox(t *testing.T, stateDir, device string) int {
	t.Helper()
	ob, err := outbox.Open(filepath.Join(stateDir, "outbox.db"), device, outbox.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	n, err := ob.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// uniqueRoot keeps parallel runs on a shared broker apart.
func uniqueRoot(t *testing.T) string {
	return fmt.Sprintf("vaora-test/%d-%d", os.Getpid(), time.Now().UnixNano())
}

// hubDB is the database a system test's hub uses: a fresh PostgreSQL schema when VAORA_TEST_PG is set, else a
// SQLite file.
func hubDB(t *testing.T) string {
	t.Helper()
	pg := os.Getenv("VAORA_TEST_PG")
	if pg == "" {
		t.Log("VAORA_TEST_PG not set: the hub uses SQLite in this test")
		return "sqlite:" + filepath.Join(t.TempDir(), "hub.db")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatalf("VAORA_TEST_PG=%s: %v", pg, err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("vaora_sys_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), pg)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Logf("the hub uses PostgreSQL schema %s", schema)
	return u.String()
}

// mosquitto is a private broker this test starts, stops and restarts on its own port, leaving the machine's alone.
type mosquitto struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func needMosquitto(t *testing.T) {
	t.Helper()
	if os.Getenv("VAORA_TEST_MQTT") == "" {
		t.Skip("VAORA_TEST_MQTT not set: skipping the test against a real Mosquitto (CI runs it)")
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Fatal("VAORA_TEST_MQTT is set but the mosquitto binary is not on PATH (apt-get install mosquitto)")
	}
}

func newMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	// Mosquitto drops from root to its own user, so its files must be readable by others.
	dir, err := os.MkdirTemp("", "vaora-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	m := &mosquitto{t: t, port: freePort(t), dir: dir}
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

// start runs the broker; acl, when not empty, is the content of its ACL file (anonymous clients).
func (m *mosquitto) start(acl string) {
	m.t.Helper()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", m.port)
	if acl != "" {
		aclPath := filepath.Join(m.dir, "acl")
		if err := os.WriteFile(aclPath, []byte(acl), 0o644); err != nil {
			m.t.Fatal(err)
		}
		conf += "acl_file " + aclPath + "\n"
	}
	confPath := filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		m.t.Fatal(err)
	}
	m.cmd = exec.Command("mosquitto", "-c", confPath)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	m.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(m.cmd, m.done)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatalf("mosquitto did not listen on port %d", m.port)
}

func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}
