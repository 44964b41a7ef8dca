package powercut

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mountT mounts backing at mnt for the test, or skips it where this machine cannot mount FUSE.
func mountT(t testing.TB, backing, mnt string) *FS {
	t.Helper()
	f, err := Mount(backing, mnt, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("FUSE not available here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func cut(t *testing.T, f *FS) {
	t.Helper()
	if err := f.Cut(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stats at the cut: %+v", f.Stats())
}

// setup makes a backing directory holding name → content (durable before the mount) and mounts it.
func setup(t *testing.T, durable map[string][]byte) (backing, mnt string, f *FS) {
	backing, mnt = t.TempDir(), t.TempDir()
	for name, b := range durable {
		if err := os.WriteFile(filepath.Join(backing, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return backing, mnt, mountT(t, backing, mnt)
}

// writeAt opens name under dir, writes b at off and, when sync is set, fdatasyncs, then closes.
func writeAt(t *testing.T, dir, name string, b []byte, off int64, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := unix.Fdatasync(int(fd.Fd())); err != nil {
			t.Fatal(err)
		}
	}
}

func truncateTo(t *testing.T, dir, name string, size int64, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fd.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes %s, want %d bytes %s", path, len(got), brief(got), len(want), brief(want))
	}
}

func wantNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: want no file, got %v", path, err)
	}
}

func brief(b []byte) string {
	if len(b) > 24 {
		return fmt.Sprintf("%q…", b[:24])
	}
	return fmt.Sprintf("%q", b)
}

func pattern(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

func TestCut(t *testing.T) {
	t.Run("unsynced new file is gone", func(t *testing.T) {
		backing, mnt, f := setup(t, nil)
		writeAt(t, mnt, "new", []byte("hello"), 0, false)
		wantFile(t, filepath.Join(mnt, "new"), []byte("hello"))
		wantFile(t, filepath.Join(backing, "new"), nil) // named at once, but empty: data waits for fsync
		cut(t, f)
		wantNoFile(t, filepath.Join(backing, "new"))
		if s := f.Stats(); s.DroppedFiles != 1 || s.DroppedBytes != pageSize || s.Writes != 1 {
			t.Errorf("stats %+v: want 1 write, 1 page and 1 file dropped", s)
		}
	})
	t.Run("synced new file stays", func(t *testing.T) {
		backing, mnt, f := setup(t, nil)
		writeAt(t, mnt, "new", []byte("hello"), 0, true)
		cut(t, f)
		wantFile(t, filepath.Join(backing, "new"), []byte("hello"))
		if s := f.Stats(); s.Syncs != 1 || s.DroppedBytes != 0 || s.DroppedFiles != 0 {
			t.Errorf("stats %+v: want 1 sync and nothing dropped", s)
		}
	})
	t.Run("only what was synced survives", func(t *testing.T) {
		backing, mnt, f := setup(t, nil)
		a, b := pattern('A', 6000), pattern('B', 5000)
		writeAt(t, mnt, "f", a, 0, true)
		writeAt(t, mnt, "f", b, 3000, false) // overwrites A's tail and grows the file
		wantFile(t, filepath.Join(mnt, "f"), append(a[:3000:3000], b...))
		cut(t, f)
		wantFile(t, filepath.Join(backing, "f"), a)
	})
	t.Run("reads and mmap merge held writes over the backing file", func(t *testing.T) {
		durable := pattern('D', 3*pageSize+100)
		backing, mnt, f := setup(t, map[string][]byte{"f": durable})
		writeAt(t, mnt, "f", []byte("held"), 5000, false)
		want := bytes.Clone(durable)
		copy(want[5000:], "held")
		wantFile(t, filepath.Join(mnt, "f"), want)
		if got := helper(t, "mmap", "POWERCUT_FILE="+filepath.Join(mnt, "f")); !bytes.Equal(got, want) {
			t.Fatalf("mmap in a child: %d bytes %s, want %d bytes %s", len(got), brief(got), len(want), brief(want))
		}
		cut(t, f)
		wantFile(t, filepath.Join(backing, "f"), durable)
	})
	t.Run("ftruncate is durable only after fsync", func(t *testing.T) {
		durable := pattern('D', 3*pageSize+100)
		backing, mnt, f := setup(t, map[string][]byte{"f": durable})
		truncateTo(t, mnt, "f", 100, false)
		truncateTo(t, mnt, "f", 9000, false) // grown back: the bytes cut off must read as zeros
		want := append(bytes.Clone(durable[:100]), make([]byte, 8900)...)
		wantFile(t, filepath.Join(mnt, "f"), want)
		cut(t, f)
		wantFile(t, filepath.Join(backing, "f"), durable)

		f = mountT(t, backing, mnt)
		truncateTo(t, mnt, "f", 100, false)
		truncateTo(t, mnt, "f", 9000, true)
		cut(t, f)
		wantFile(t, filepath.Join(backing, "f"), want)
	})
	t.Run("write past the end is durable only after fsync", func(t *testing.T) {
		durable := pattern('D', 100)
		backing, mnt, f := setup(t, map[string][]byte{"f": durable})
		writeAt(t, mnt, "f", []byte("x"), 20000, false)
		if st, err := os.Stat(filepath.Join(mnt, "f")); err != nil || st.Size() != 20001 {
			t.Fatalf("size through the mount: %v %v, want 20001", st.Size(), err)
		}
		var sx unix.Statx_t // asking for the birth time makes the kernel send STATX rather than GETATTR
		err := unix.Statx(unix.AT_FDCWD, filepath.Join(mnt, "f"), unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx)
		if err != nil || sx.Size != 20001 {
			t.Fatalf("statx through the mount: size %d %v, want 20001", sx.Size, err)
		}
		cut(t, f)
		wantFile(t, filepath.Join(backing, "f"), durable)
	})
	t.Run("O_TRUNC is durable only after fsync", func(t *testing.T) {
		durable := pattern('D', 100)
		backing, mnt, f := setup(t, map[string][]byte{"f": durable})
		if err := os.WriteFile(filepath.Join(mnt, "f"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		wantFile(t, filepath.Join(mnt, "f"), nil)
		cut(t, f)
		wantFile(t, filepath.Join(backing, "f"), durable)
	})
	t.Run("rename makes a name durable but not the data", func(t *testing.T) {
		backing, mnt, f := setup(t, nil)
		writeAt(t, mnt, "tmp", []byte("new contents"), 0, false)
		if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "final")); err != nil {
			t.Fatal(err)
		}
		cut(t, f)
		wantFile(t, filepath.Join(backing, "final"), nil) // ext4's empty file after a crash
		wantNoFile(t, filepath.Join(backing, "tmp"))
	})
	t.Run("mkdir is durable at once", func(t *testing.T) {
		backing, mnt, f := setup(t, nil)
		if err := os.Mkdir(filepath.Join(mnt, "d"), 0o700); err != nil {
			t.Fatal(err)
		}
		cut(t, f)
		if st, err := os.Stat(filepath.Join(backing, "d")); err != nil || !st.IsDir() {
			t.Fatalf("directory lost at the cut: %v", err)
		}
	})
	t.Run("fallocate is refused", func(t *testing.T) {
		_, mnt, _ := setup(t, nil)
		fd, err := os.Create(filepath.Join(mnt, "f"))
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		if err := unix.Fallocate(int(fd.Fd()), 0, 0, 8192); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Fatalf("fallocate: %v, want EOPNOTSUPP", err)
		}
	})
}

func TestMountRefusesNonEmptyMountpoint(t *testing.T) {
	mnt := t.TempDir()
	if err := os.WriteFile(filepath.Join(mnt, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Mount(t.TempDir(), mnt, nil); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Mount on a non-empty directory: %v", err)
	}
}

func TestMountWithoutDevFuse(t *testing.T) {
	devFuse = filepath.Join(t.TempDir(), "fuse")
	defer func() { devFuse = "/dev/fuse" }()
	_, err := Mount(t.TempDir(), t.TempDir(), nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Mount without the FUSE device: %v, want ErrUnavailable", err)
	}
	t.Log(err)
}

// TestMountNotPermitted mounts as an unprivileged user, in a child, and wants a prompt ErrUnavailable.
func TestMountNotPermitted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user (Mount's own error is what skips the other tests here)")
	}
	// The child must be able to run the test binary and see both directories, but not own the mountpoint
	// (fusermount3, where installed, would let it mount on a directory it owns).
	dir, err := os.MkdirTemp("", "powercut")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, backing, mnt := filepath.Join(dir, "powercut.test"), filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{os.Chmod(dir, 0o755), os.WriteFile(bin, self, 0o755), os.Mkdir(backing, 0o755),
		os.Mkdir(mnt, 0o755)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := helperCmd(ctx, "mount", "POWERCUT_BACKING="+backing, "POWERCUT_MOUNTPOINT="+mnt)
	cmd.Path, cmd.Args[0] = bin, bin
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as nobody: %v: %s%s", err, out, stderr.Bytes())
	}
	t.Logf("refused in %v: %s", time.Since(start).Round(time.Millisecond), bytes.TrimSpace(out))
}

// TestBoltOnMount runs bbolt on the mount (in a child: see the package doc on mmap): 1000 entries in separate
// transactions, reopened and read back; then a cut, and every entry is still there.
func TestBoltOnMount(t *testing.T) {
	backing, mnt := t.TempDir(), t.TempDir()
	f := mountT(t, backing, mnt)
	db := filepath.Join(mnt, "outbox.db")
	start := time.Now()
	if out := helper(t, "bolt-1000", "POWERCUT_DB="+db); string(out) != "1000\n" {
		t.Fatalf("child: %q", out)
	}
	elapsed := time.Since(start)
	s := f.Stats()
	t.Logf("1000 transactions in %v: %d fsyncs (%.0f/s), %d writes", elapsed.Round(time.Millisecond), s.Syncs,
		float64(s.Syncs)/elapsed.Seconds(), s.Writes)
	cut(t, f)
	mountT(t, backing, mnt)
	if keys := strings.Fields(string(helper(t, "bolt-check", "POWERCUT_DB="+db))); len(keys) != 1000 {
		t.Fatalf("after the cut: %d entries, want 1000", len(keys))
	}
}

// TestBoltSurvivesPowerCuts is the proof: a child commits entries one per transaction and prints each key once
// Update has returned; it is killed at a random moment, the power is cut, and every printed key must be in the DB.
func TestBoltSurvivesPowerCuts(t *testing.T) {
	if lost := powerCuts(t, false, 25); lost > 0 {
		t.Fatalf("%d entries printed as committed were lost", lost)
	}
}

// TestBoltNoSyncLosesEntries is the control that shows the test above can fail: with NoSync bbolt does not fsync
// its commits, and entries it reported committed must be lost at some cut.
func TestBoltNoSyncLosesEntries(t *testing.T) {
	if lost := powerCuts(t, true, 8); lost == 0 {
		t.Fatal("no entry was lost with NoSync: the emulation does not drop unsynced writes")
	}
}

func powerCuts(t *testing.T, noSync bool, cycles int) (lost int) {
	backing, mnt := t.TempDir(), t.TempDir()
	db := filepath.Join(mnt, "outbox.db")
	seed := time.Now().UnixNano()
	if s := os.Getenv("POWERCUT_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (POWERCUT_SEED=%d repeats this run)", seed, seed)
	rng := newRand(seed)

	printed := map[string]bool{} // every key a child reported committed, in any cycle
	missing := map[string]bool{}
	var syncs, entries int64
	var running time.Duration
	for c := range cycles {
		f := mountT(t, backing, mnt)
		// A kill on a timer mostly lands while the child waits for an fsync, when nothing is held; every other cycle
		// the file system kills it on a write, so the cut tears a commit.
		var kill killPlan
		switch {
		case c == 0: // the first child may die anywhere, from creating the file on
			kill = killPlan{after: time.Duration(rng.IntN(100)) * time.Millisecond, fromStart: true}
		case c%2 == 1:
			kill = killPlan{after: 10 * time.Second, fromStart: true, atWrite: int64(1 + rng.IntN(1500))}
		default: // timed from the first commit, so a slow start (the race detector's) does not eat the run
			kill = killPlan{after: time.Duration(rng.IntN(250)) * time.Millisecond}
		}
		keys, ran := runUntilKilled(t, f, kill, "POWERCUT_DB="+db, fmt.Sprintf("POWERCUT_PREFIX=c%02d", c),
			fmt.Sprintf("POWERCUT_NOSYNC=%t", noSync))
		held := f.Stats()
		if err := f.Cut(); err != nil {
			t.Fatal(err)
		}
		dropped := f.Stats().DroppedBytes
		syncs, entries, running = syncs+held.Syncs, entries+int64(len(keys)), running+ran
		for _, k := range keys {
			printed[k] = true
		}

		f = mountT(t, backing, mnt)
		present := map[string]bool{}
		for _, k := range strings.Fields(string(helper(t, "bolt-check", "POWERCUT_DB="+db))) {
			present[k] = true
		}
		if err := f.Unmount(); err != nil {
			t.Fatal(err)
		}
		newlyLost := 0
		for k := range printed {
			if !present[k] && !missing[k] {
				missing[k] = true
				newlyLost++
			}
		}
		t.Logf("cycle %2d: killed %-14s %4d entries committed, %4d fsyncs, %4d writes, %6d bytes dropped; %4d in the DB, %d lost",
			c, kill.String()+":", len(keys), held.Syncs, held.Writes, dropped, len(present), newlyLost)
	}
	t.Logf("%d cycles: %d entries committed, %d fsyncs in %v of writing (%.0f fsyncs/s, %.0f commits/s through the mount)",
		cycles, entries, syncs, running.Round(time.Millisecond), float64(syncs)/running.Seconds(),
		float64(entries)/running.Seconds())
	if entries == 0 {
		t.Fatal("no child committed anything: the test proved nothing")
	}
	return len(missing)
}

// killPlan says when the writer dies: after a time, counted from its start or from its first commit, or when the
// file system has taken its atWrite-th write.
type killPlan struct {
	after     time.Duration
	fromStart bool
	atWrite   int64
}

func (k killPlan) String() string {
	switch {
	case k.atWrite > 0:
		return fmt.Sprintf("at write %d", k.atWrite)
	case k.fromStart:
		return fmt.Sprintf("%v in", k.after)
	}
	return fmt.Sprintf("%v on", k.after)
}

// runUntilKilled starts the bbolt writer in a child, SIGKILLs it as planned and returns the keys it printed whole.
func runUntilKilled(t *testing.T, f *FS, plan killPlan, env ...string) (keys []string, ran time.Duration) {
	t.Helper()
	cmd := helperCmd(context.Background(), "bolt-writer", env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var child atomic.Pointer[os.Process]
	if plan.atWrite > 0 {
		f.mu.Lock()
		f.afterWrite = func(s Stats) {
			if p := child.Load(); p != nil && s.Writes == plan.atWrite {
				p.Kill() // the child dies once this write is answered: it is held, and the cut drops it
			}
		}
		f.mu.Unlock()
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Store(cmd.Process)
	done, first := make(chan []string), make(chan struct{})
	go func() {
		var keys []string
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				done <- keys // a line cut short by the kill was never reported committed
				return
			}
			if keys = append(keys, strings.TrimSuffix(line, "\n")); len(keys) == 1 {
				close(first)
			}
		}
	}()
	var timer <-chan time.Time
	if plan.fromStart {
		timer = time.After(plan.after)
	}
	for ended := false; !ended; {
		select {
		case keys = <-done: // killed by the file system, or died
			ended = true
		case <-first:
			timer, first = time.After(plan.after), nil
		case <-timer:
			cmd.Process.Kill()
			keys, ended = <-done, true
		}
	}
	err = cmd.Wait()
	ran = time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("writer ended by itself (%v) before the kill: %s", err, stderr.Bytes())
	}
	return keys, ran
}

// BenchmarkFsync measures a 4 KiB write and fdatasync, through the mount and on the backing directory directly.
func BenchmarkFsync(b *testing.B) {
	backing, mnt := b.TempDir(), b.TempDir()
	mountT(b, backing, mnt)
	for _, dir := range []struct{ name, path string }{{"mount", mnt}, {"direct", backing}} {
		b.Run(dir.name, func(b *testing.B) {
			fd, err := os.Create(filepath.Join(dir.path, "bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer fd.Close()
			page := pattern('x', pageSize)
			for i := 0; b.Loop(); i++ {
				if _, err := fd.WriteAt(page, int64(i%256)*pageSize); err != nil {
					b.Fatal(err)
				}
				if err := unix.Fdatasync(int(fd.Fd())); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
		})
	}
}
