package powercut

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the child processes that use the mount: whatever mmaps a file there (bbolt does) must
// not be the process serving it. POWERCUT_HELPER names the child's job.
func TestMain(m *testing.M) {
	if job := os.Getenv("POWERCUT_HELPER"); job != "" {
		run, ok := helpers[job]
		if !ok {
			fmt.Fprintf(os.Stderr, "no helper %q\n", job)
			os.Exit(2)
		}
		if err := run(); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", job, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperCmd(ctx context.Context, job string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	// A race-detector build sleeps a second at exit unless told not to; there are fifty children per run.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), append(env, "POWERCUT_HELPER="+job, "GORACE="+gorace)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a test that died
	return cmd
}

// helper runs a child job to its end and returns what it printed.
func helper(t *testing.T, job string, env ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := helperCmd(ctx, job, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v: %s", job, err, stderr.Bytes())
	}
	return out
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 0)) }

var bucket = []byte("entries")

// The outbox's own options: 4 KiB pages. NoSync only for the control.
func openBolt(readOnly bool) (*bolt.DB, error) {
	return bolt.Open(os.Getenv("POWERCUT_DB"), 0o600, &bolt.Options{
		PageSize: 4096, Timeout: 5 * time.Second, ReadOnly: readOnly, NoSync: os.Getenv("POWERCUT_NOSYNC") == "true",
	})
}

func put(db *bolt.DB, key string) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value(key))
	})
}

// value is a few hundred bytes, so the file grows through several bbolt grow steps within a cycle.
func value(key string) []byte { return []byte(strings.Repeat(key+";", 20)) }

var helpers = map[string]func() error{
	// mount tries to mount as whoever runs it and prints the error, which must be ErrUnavailable.
	"mount": func() error {
		f, err := Mount(os.Getenv("POWERCUT_BACKING"), os.Getenv("POWERCUT_MOUNTPOINT"), nil)
		if err == nil {
			f.Unmount()
			return errors.New("mounted, but mounting should not have been permitted")
		}
		fmt.Println(err)
		if !errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("error does not wrap ErrUnavailable: %w", err)
		}
		return nil
	},
	// bolt-writer commits one entry per transaction and prints each key once it is committed, until killed.
	"bolt-writer": func() error {
		db, err := openBolt(false)
		if err != nil {
			return err
		}
		prefix := os.Getenv("POWERCUT_PREFIX")
		for i := range 200_000 { // bounded, in case the parent never kills it
			key := fmt.Sprintf("%s-%06d", prefix, i)
			if err := put(db, key); err != nil {
				return err
			}
			if _, err := os.Stdout.WriteString(key + "\n"); err != nil {
				return err
			}
		}
		return db.Close()
	},
	// bolt-check opens the DB read-only, runs bbolt's consistency check and prints every key.
	"bolt-check": func() error {
		if _, err := os.Stat(os.Getenv("POWERCUT_DB")); os.IsNotExist(err) {
			return nil // the cut came before the file was ever fsynced
		}
		db, err := openBolt(true)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			var damage []error
			for err := range tx.Check() { // drained whole: the checker runs in the transaction
				damage = append(damage, err)
			}
			if len(damage) > 0 {
				return fmt.Errorf("consistency check: %w", errors.Join(damage...))
			}
			b := tx.Bucket(bucket)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				if !bytes.Equal(v, value(string(k))) {
					return fmt.Errorf("entry %s has a damaged value", k)
				}
				_, err := fmt.Printf("%s\n", k)
				return err
			})
		})
	},
	// bolt-1000 writes 1000 entries in separate transactions, reopens the DB and reads them back.
	"bolt-1000": func() error {
		db, err := openBolt(false)
		if err != nil {
			return err
		}
		for i := range 1000 {
			if err := put(db, fmt.Sprintf("k-%04d", i)); err != nil {
				return err
			}
		}
		if err := db.Close(); err != nil {
			return err
		}
		if db, err = openBolt(false); err != nil {
			return err
		}
		defer db.Close()
		n := 0
		err = db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
				if want := fmt.Sprintf("k-%04d", n); string(k) != want || !bytes.Equal(v, value(want)) {
					return fmt.Errorf("entry %d: got key %s", n, k)
				}
				n++
				return nil
			})
		})
		fmt.Println(n)
		return err
	},
	// mmap maps POWERCUT_FILE read-only, as bbolt does, and prints what it sees.
	"mmap": func() error {
		fd, err := os.Open(os.Getenv("POWERCUT_FILE"))
		if err != nil {
			return err
		}
		defer fd.Close()
		st, err := fd.Stat()
		if err != nil {
			return err
		}
		b, err := unix.Mmap(int(fd.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		defer unix.Munmap(b)
		_, err = os.Stdout.Write(b)
		return err
	},
}
