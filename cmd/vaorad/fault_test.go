package main

// The fault suite: real vaorad and vaorahub processes, a Mosquitto and a scratch PostgreSQL cluster this test starts
// on free ports (the machine's own stay untouched), scans fed continuously, and every fault a gate device meets.
// At the end the checker compares every entry vaorad logged as accepted with the hub's database and prints
// `lost=N duplicates=N gaps=N`.
//
// VAORA_TEST_FAULTS=1 selects it; VAORA_FAULT_CYCLES sets the SIGKILL cycles (default 200; `make fault` runs 1000).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vaora/vaora/sync/outbox/powercut"
)

// scratchPG is a PostgreSQL cluster of the test's own, which it may stop, crash and restart.
type scratchPG struct {
	t    *testing.T
	dir  string
	port int
	bin  string
}

func newScratchPG(t *testing.T) *scratchPG {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		t.Fatalf("the fault suite needs PostgreSQL's initdb in %s (apt-get install postgresql)", bin)
	}
	// initdb refuses root, and postgres cannot write in t.TempDir() (root-owned, 0700).
	dir, err := os.MkdirTemp("", "vaora-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	pg := &scratchPG{t: t, dir: dir, port: freePort(t), bin: bin}
	pg.run("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync")
	pg.start()
	t.Cleanup(func() {
		pg.ctl("-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	return pg
}

func (pg *scratchPG) run(tool string, args ...string) {
	pg.t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pg.bin, tool)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		pg.t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
}

func (pg *scratchPG) ctl(args ...string) error {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pg.bin, "pg_ctl"),
		"-D", filepath.Join(pg.dir, "data"), "-w"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %v\n%s", args, err, out)
	}
	return nil
}

func (pg *scratchPG) start() {
	pg.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", pg.port, pg.dir)
	if err := pg.ctl("-l", filepath.Join(pg.dir, "log"), "-o", opts, "start"); err != nil {
		pg.t.Fatal(err)
	}
}

// crash stops the server as a power cut would (immediate: no checkpoint) and starts it again.
func (pg *scratchPG) crash() {
	pg.t.Helper()
	if err := pg.ctl("-m", "immediate", "stop"); err != nil {
		pg.t.Fatal(err)
	}
	pg.start()
}

func (pg *scratchPG) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// proxy forwards a TCP port to the broker; Cut drops every connection and refuses new ones until Restore.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), target: target, conns: map[net.Conn]bool{}}
	p.Restore()
	t.Cleanup(p.Cut)
	return p
}

func (p *proxy) url() string { return "tcp://" + p.addr }

func (p *proxy) Restore() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after a cut
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *proxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close(); c.Close() }()
	io.Copy(c, up)
	c.Close()
	up.Close()
}

func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// faultSuite holds the services and what every vaorad said it accepted.
type faultSuite struct {
	t      *testing.T
	mq     *mosquitto
	pg     *scratchPG
	root   string
	hub    *hub
	state  string
	scanNo atomic.Int64

	dirs     map[string]string // device → its state dir, when not under state (the power-cut mount)
	mu       sync.Mutex
	accepted map[string]map[string]bool // device → "epoch/seq"
	faults   map[string]int             // device → scans refused as faults (storage full)
}

func (s *faultSuite) startHub() {
	s.hub = startHub(s.t, "--broker", s.mq.url(), "--db", s.pg.url(), "--topic-root", s.root, "--log-level", "info")
}

func (s *faultSuite) stateDir(id string) string {
	if d, ok := s.dirs[id]; ok {
		return d
	}
	return filepath.Join(s.state, id)
}

// device starts vaorad for id (its own state dir) and collects its decisions.
func (s *faultSuite) device(id, broker string, extra ...string) *proc {
	args := append([]string{"--device-id", id, "--broker", broker, "--state-dir", s.stateDir(id),
		"--topic-root", s.root}, extra...)
	p := start(s.t, "vaorad", args...)
	go func() {
		for {
			select {
			case m := <-p.logs:
				s.record(id, m)
			case <-p.done:
				for len(p.logs) > 0 {
					s.record(id, <-p.logs)
				}
				return
			}
		}
	}()
	return p
}

func (s *faultSuite) record(id string, m map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m["outcome"] {
	case "accepted":
		if s.accepted[id] == nil {
			s.accepted[id] = map[string]bool{}
		}
		s.accepted[id][fmt.Sprintf("%s/%d", m["epoch"], int64(m["seq"].(float64)))] = true
	case "fault":
		s.faults[id]++
	}
}

// feed writes a new, unique scan to the current process every interval until ctx ends. The scan's middle name
// carries its number, so the masked name the hub stores tells one scan from another.
func (s *faultSuite) feed(ctx context.Context, cur func() *proc, every time.Duration) {
	for ctx.Err() == nil {
		if p := cur(); p != nil {
			n := s.scanNo.Add(1)
			fmt.Fprintf(p.stdin, "001190%06d||Phạm Mã%d An|01021990|Nữ|Số %d Phố Giả, Hà Nội|10102021\n", n%1000000, n, n)
		}
		time.Sleep(every)
	}
}

// settle runs each device once more until its outbox is empty, then stops it.
func (s *faultSuite) settle(id, broker string, extra ...string) {
	s.t.Helper()
	p := s.device(id, broker, extra...)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		s.mu.Lock()
		want := len(s.accepted[id])
		s.mu.Unlock()
		if s.dbCount(id) >= want && !strings.Contains(lastLines(p.Stderr(), 3), "resending") {
			break
		}
	}
	time.Sleep(time.Second) // the last ack
	p.stop()
	if _, ok := s.dirs[id]; ok {
		return // on a power-cut mount: the caller unmounts and checks the backing directory
	}
	if n := pendingInOutbox(s.t, s.stateDir(id), id); n != 0 {
		s.t.Errorf("%s: %d entries still in the outbox after settling", id, n)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func (s *faultSuite) dbCount(id string) int {
	conn, err := pgx.Connect(context.Background(), s.pg.url())
	if err != nil {
		return -1
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM entries WHERE device = $1", id).Scan(&n); err != nil {
		return -1
	}
	return n
}

// check compares what the device logged as accepted with the hub's database and prints the verdict.
func (s *faultSuite) check(id string) (lost, dups, gaps int) {
	return s.checkAs("fault suite", id)
}

func (s *faultSuite) checkAs(label, id string) (lost, dups, gaps int) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.pg.url())
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT epoch, seq, masked_name FROM entries WHERE device = $1", id)
	if err != nil {
		s.t.Fatal(err)
	}
	have := map[string]bool{}
	names := map[string]int{}
	seqs := map[string][]int64{}
	for rows.Next() {
		var epoch, name string
		var seq int64
		if err := rows.Scan(&epoch, &seq, &name); err != nil {
			s.t.Fatal(err)
		}
		k := fmt.Sprintf("%s/%d", epoch, seq)
		if have[k] {
			dups++
		}
		have[k] = true
		names[name]++
		seqs[epoch] = append(seqs[epoch], seq)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	for _, n := range names {
		dups += n - 1 // one scan stored twice under two identities
	}
	for _, ss := range seqs {
		sort.Slice(ss, func(i, j int) bool { return ss[i] < ss[j] })
		gaps += int(ss[len(ss)-1]) - len(ss) // seqs 1..max that are missing
	}
	s.mu.Lock()
	accepted := len(s.accepted[id])
	for k := range s.accepted[id] {
		if !have[k] {
			lost++
		}
	}
	faults := s.faults[id]
	s.mu.Unlock()
	fmt.Printf("%s %-22s accepted=%d at_hub=%d refused_as_fault=%d lost=%d duplicates=%d gaps=%d\n",
		label, id, accepted, len(have), faults, lost, dups, gaps)
	if accepted == 0 {
		s.t.Errorf("%s: no scan was accepted: the scenario tested nothing", id)
	}
	return lost, dups, gaps
}

func TestFaultSuite(t *testing.T) {
	if os.Getenv("VAORA_TEST_FAULTS") == "" {
		t.Skip("VAORA_TEST_FAULTS not set: skipping the fault suite (CI runs it reduced; `make fault` runs it in full)")
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Fatal("the fault suite needs mosquitto (apt-get install mosquitto)")
	}
	cycles := 200
	if v := os.Getenv("VAORA_FAULT_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("VAORA_FAULT_CYCLES=%q: want a positive number", v)
		}
		cycles = n
	}
	s := &faultSuite{t: t, root: uniqueRoot(t), state: t.TempDir(), accepted: map[string]map[string]bool{},
		faults: map[string]int{}, dirs: map[string]string{}}
	s.mq = newMosquitto(t)
	s.mq.start("")
	s.pg = newScratchPG(t)
	s.startHub()

	var mu sync.Mutex
	var cur *proc
	current := func() *proc { mu.Lock(); defer mu.Unlock(); return cur }
	set := func(p *proc) { mu.Lock(); cur = p; mu.Unlock() }
	feeding := func(every time.Duration) func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.feed(ctx, current, every); close(done) }()
		return func() { cancel(); <-done; set(nil) }
	}
	ids := []string{}
	section := func(name string, f func()) {
		start := time.Now()
		f()
		t.Logf("fault scenario %s done in %v", name, time.Since(start).Round(time.Millisecond))
	}

	section("a-sigkill-vaorad", func() {
		id := "fault-a"
		ids = append(ids, id)
		stop := feeding(2 * time.Millisecond)
		for range cycles {
			p := s.device(id, s.mq.url())
			set(p)
			time.Sleep(time.Duration(20+rand.IntN(250)) * time.Millisecond)
			p.kill()
		}
		stop()
		s.settle(id, s.mq.url())
	})

	section("b-restart-mosquitto", func() {
		id := "fault-b"
		ids = append(ids, id)
		p := s.device(id, s.mq.url())
		set(p)
		stop := feeding(3 * time.Millisecond)
		for range 8 {
			time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
			s.mq.stop()
			time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
			s.mq.start("")
		}
		stop()
		p.stop()
		s.settle(id, s.mq.url())
	})

	section("c-sigkill-vaorahub", func() {
		id := "fault-c"
		ids = append(ids, id)
		p := s.device(id, s.mq.url(), "--log-level", "info")
		set(p)
		stop := feeding(time.Millisecond)
		for range 12 {
			// Batches commit every few milliseconds: a kill at a random moment lands before a commit, during one,
			// or between a commit and its ack.
			time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
			s.hub.kill()
			s.startHub()
		}
		stop()
		p.stop()
		s.settle(id, s.mq.url())
	})

	section("d-restart-postgresql", func() {
		id := "fault-d"
		ids = append(ids, id)
		p := s.device(id, s.mq.url())
		set(p)
		stop := feeding(2 * time.Millisecond)
		for range 4 {
			time.Sleep(time.Duration(300+rand.IntN(400)) * time.Millisecond)
			s.pg.crash()
		}
		stop()
		p.stop()
		s.settle(id, s.mq.url())
	})

	section("e-cut-link", func() {
		id := "fault-e"
		ids = append(ids, id)
		px := newProxy(t, fmt.Sprintf("127.0.0.1:%d", s.mq.port))
		p := s.device(id, px.url())
		set(p)
		stop := feeding(2 * time.Millisecond)
		for range 8 {
			time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
			px.Cut()
			time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
			px.Restore()
		}
		stop()
		p.stop()
		s.settle(id, px.url())
	})

	section("f-power-loss", func() {
		id := "fault-f"
		backing, mnt := t.TempDir(), t.TempDir()
		fs, err := powercut.Mount(backing, mnt, nil)
		if errors.Is(err, powercut.ErrUnavailable) {
			t.Logf("scenario f skipped: %v", err)
			return
		} else if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		s.dirs[id] = filepath.Join(mnt, id)
		stop := feeding(2 * time.Millisecond)
		var dropped int64
		powerCycles := max(20, cycles/10)
		for c := range powerCycles {
			p := s.device(id, s.mq.url())
			set(p)
			if c%2 == 1 {
				// Every other cut lands inside a commit: the file system kills vaorad on a random write, which
				// bbolt has issued but not yet fsynced.
				at := int64(50 + rand.IntN(400))
				var once sync.Once
				fs.AfterWrite(func(st powercut.Stats) {
					if st.Writes >= at {
						once.Do(func() { p.cmd.Process.Kill() })
					}
				})
				select {
				case <-p.done:
				case <-time.After(10 * time.Second):
				}
			} else {
				time.Sleep(time.Duration(30+rand.IntN(300)) * time.Millisecond)
			}
			p.kill() // the power goes: the process dies and every write not yet fsynced is lost
			set(nil)
			if err := fs.Cut(); err != nil {
				t.Fatal(err)
			}
			dropped += fs.Stats().DroppedBytes
			if fs, err = powercut.Mount(backing, mnt, nil); err != nil {
				t.Fatal(err)
			}
		}
		stop()
		s.settle(id, s.mq.url())
		if err := fs.Unmount(); err != nil {
			t.Fatal(err)
		}
		t.Logf("power loss: %d cuts dropped %d unsynced bytes in all", powerCycles, dropped)
		if n := pendingInOutbox(t, filepath.Join(backing, id), id); n != 0 {
			t.Errorf("%s: %d entries still in the outbox after settling", id, n)
		}
	})

	section("g-fill-storage-budget", func() {
		id := "fault-g"
		ids = append(ids, id)
		conf := filepath.Join(t.TempDir(), "vaorad.yaml")
		if err := os.WriteFile(conf, []byte("device_id: fault-g\nbroker: tcp://127.0.0.1:1\nstorage:\n  budget: 1MiB\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		px := newProxy(t, fmt.Sprintf("127.0.0.1:%d", s.mq.port))
		p := s.device(id, px.url(), "--config", conf)
		set(p)
		px.Cut()
		stop := feeding(500 * time.Microsecond)
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(p.Stderr(), "storage full") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // a few more refusals
		s.mu.Lock()
		refused := s.faults[id]
		s.mu.Unlock()
		if refused == 0 {
			t.Errorf("%s: the budget never filled: no scan was refused", id)
		}
		px.Restore() // the backlog drains and scanning is accepted again
		time.Sleep(3 * time.Second)
		stop()
		p.stop()
		s.settle(id, px.url(), "--config", conf)
	})

	var lost, dups, gaps int
	for _, id := range ids {
		l, d, g := s.check(id)
		lost, dups, gaps = lost+l, dups+d, gaps+g
	}
	fmt.Printf("fault suite total (%d SIGKILL cycles): lost=%d duplicates=%d gaps=%d\n", cycles, lost, dups, gaps)
	if lost+dups+gaps > 0 {
		t.Errorf("lost=%d duplicates=%d gaps=%d", lost, dups, gaps)
	}

	// The checker must bite: remove one accepted entry from the middle and store another scan twice, and it must
	// count one lost, one gap and one duplicate.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.pg.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var epoch string
	var seq int64
	if err := conn.QueryRow(ctx, `DELETE FROM entries WHERE (device, epoch, seq) IN
		(SELECT device, epoch, seq FROM entries WHERE device = 'fault-b' ORDER BY seq LIMIT 1 OFFSET 10) RETURNING epoch, seq`).Scan(&epoch, &seq); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO entries SELECT device, epoch, seq + 1000000, v, direction, kind, state, reasons,
		masked_name, scanned_at, boot_id, mono_ns, clock_synced, received_at FROM entries WHERE device = 'fault-b' ORDER BY seq DESC LIMIT 1`); err != nil {
		t.Logf("could not plant a duplicate (schema changed?): %v", err)
		return
	}
	if l, d, g := s.checkAs("checker self-test (one entry deleted, one planted twice):", "fault-b"); l != 1 || d < 1 || g < 1 {
		t.Errorf("checker self-test: after deleting %s/%d and planting a duplicate it reports lost=%d duplicates=%d gaps=%d", epoch, seq, l, d, g)
	}
}
