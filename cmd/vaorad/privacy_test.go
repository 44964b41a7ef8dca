package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/text/unicode/norm"

	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

// Made-up codes of every personal kind, as a serial reader sends them (FORMATS.md examples).
const (
	bhytAn     = "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|-|4|01/01/2025|-|15/12/2024|"
	covidBinh  = "075185000123|TRAN THI BINH|1985-07-14|1|1629793885861712|1629793885861711<2<<0912345678"
	cccdBinhID = "075185000123"
)

// plaintexts are what must never rest on the device or reach a log: names (also the masked one, which only the
// device's screen and the hub show), ID and card numbers, dates of birth, addresses, phone, QID.
var plaintexts = []string{
	"Nguyễn", "Văn An", "NGUYEN", "TRAN THI", "Trần", "Thị Bình",
	"001090012345", "123456789", "DN4750123456789", cccdBinhID, "1629793885861712", "0912345678",
	"01021990", "1990-02-01", "1985-07-14", "Hàng Bạc", "Hoàn Kiếm", "Nhơn Trạch",
	"4e677579e1bb856e2056c4836e20416e",
}

// assertNoPlaintext fails if any plaintext is in b, in UTF-8 as composed (NFC) or decomposed (NFD).
func assertNoPlaintext(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, p := range plaintexts {
		for _, form := range []string{p, norm.NFD.String(p)} {
			if bytes.Contains(b, []byte(form)) {
				t.Errorf("%s contains the plaintext %q", what, form)
			}
		}
	}
}

// TestSerialReaderSealedToHub is issue 5's end to end: codes typed by a reader in serial mode (a pty here) are
// accepted offline; the outbox file on the "SD card" and every log line hold no name or ID number; the sealed fields
// open with the right keys and not with others; and once the hub is reachable the CCCD entry shows there as
// "Nguyễn Văn ***", diacritics intact.
func TestSerialReaderSealedToHub(t *testing.T) {
	ptm, pts, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close(); pts.Close() })
	state := t.TempDir()

	// Offline: the broker is a port nobody listens on, so the entries stay in the outbox.
	offline := "tcp://127.0.0.1:" + strconv.Itoa(freePort(t))
	d := start(t, "vaorad", "--device-id", "gate-s", "--broker", offline, "--state-dir", state,
		"--input", "serial:"+pts.Name()+",115200")
	waitLog(t, d, "serial reader open")
	// Three framings a reader uses: CR LF, a lone CR, LF.
	for _, c := range []string{cccdAn + "\r\n", bhytAn + "\r", covidBinh + "\n"} {
		if _, err := ptm.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[any]bool{}
	for range 3 {
		dec := d.decision()
		if dec["outcome"] != "accepted" {
			t.Fatalf("decision = %v", dec)
		}
		kinds[dec["kind"]] = true
	}
	if !kinds["cccd"] || !kinds["bhyt"] || !kinds["covid_app"] {
		t.Fatalf("kinds decided: %v", kinds)
	}
	if !strings.Contains(d.Stdout(), "Nguyễn Văn ***") {
		t.Fatalf("the reader's screen does not show the masked name: %q", d.Stdout())
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("vaorad exit status after SIGTERM = %d", code)
	}

	raw, err := os.ReadFile(filepath.Join(state, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	assertNoPlaintext(t, "the outbox file", raw)
	if bytes.Contains(raw, []byte("Văn ***")) {
		t.Error("the outbox file holds the masked name in plaintext: it must be sealed")
	}
	entries := outboxEntries(t, state, "gate-s")
	if len(entries) != 3 {
		t.Fatalf("%d entries in the outbox, want 3", len(entries))
	}

	service := ring(t, "service.key")
	authority := ring(t, "authority.key")
	other, err := seal.Generate(seal.RoleService, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret, err := seal.ReadKeyFile(filepath.Join(keysDir, "subject.key"))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := subject.New(secret.Private, subject.V1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.V != wire.Version || e.MaskedName != "" || e.Display == "" || e.Personal == "" {
			t.Fatalf("entry %d: v=%d masked_name=%q display=%q personal=%q", e.Seq, e.V, e.MaskedName, e.Display, e.Personal)
		}
		// Each field opens with its own key only.
		if _, err := (seal.Ring{other}).Open(e.Display); !errors.Is(err, seal.ErrUnknownKey) {
			t.Errorf("entry %d: display opened by another service key: %v", e.Seq, err)
		}
		if _, err := service.Open(e.Personal); err == nil {
			t.Errorf("entry %d: the service key opened the personal fields", e.Seq)
		}
		if _, err := authority.Open(e.Display); err == nil {
			t.Errorf("entry %d: the authority key opened the display fields", e.Seq)
		}
		// A forged sealed field (another key's id put in front) does not open either.
		forged := strings.Replace(e.Display, "."+keyIDOf(t, e.Display)+".", "."+other.ID+".", 1)
		if _, err := (seal.Ring{other}).Open(forged); err == nil {
			t.Errorf("entry %d: a display field re-labelled for another key opened", e.Seq)
		}
		disp, err := service.Open(e.Display)
		if err != nil {
			t.Fatalf("entry %d: the hub's service key does not open the display fields: %v", e.Seq, err)
		}
		pers, err := authority.Open(e.Personal)
		if err != nil {
			t.Fatalf("entry %d: the authority key does not open the personal fields: %v", e.Seq, err)
		}
		var dm struct{ Name, ID string }
		var pm struct {
			Kind   string
			Person struct{ ID, Name, QID string }
		}
		if json.Unmarshal(disp, &dm) != nil || json.Unmarshal(pers, &pm) != nil {
			t.Fatalf("entry %d: sealed fields are not JSON: %s / %s", e.Seq, disp, pers)
		}
		var id string
		switch e.Kind {
		case "cccd":
			id = "001090012345"
			if dm.Name != "Nguyễn Văn ***" || pm.Person.Name != "Nguyễn Văn An" || pm.Person.ID != id {
				t.Errorf("cccd: display %s, personal %s", disp, pers)
			}
		case "bhyt":
			id = "DN4750123456789"
			if dm.Name != "Nguyễn Văn ***" || pm.Person.Name != "Nguyễn Văn An" || pm.Person.ID != id {
				t.Errorf("bhyt: display %s, personal %s", disp, pers)
			}
		case "covid_app":
			id = "1629793885861712" // the QID names the person, not the ID number
			if dm.Name != "TRAN THI ***" || pm.Person.QID != id || pm.Person.ID != cccdBinhID {
				t.Errorf("covid_app: display %s, personal %s", disp, pers)
			}
		}
		if want := hasher.Key(e.Kind, id).String(); e.Subject != want {
			t.Errorf("%s: subject %q, want the keyed hash of its identifier %q", e.Kind, e.Subject, want)
		}
	}

	// Online: the hub opens the display fields and shows the masked name.
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	d2 := start(t, "vaorad", "--device-id", "gate-s", "--broker", h.broker, "--state-dir", state,
		"--input", "serial:"+pts.Name()+",115200")
	got := h.waitEntries(t, "gate-s", 3, 15*time.Second)
	names := map[string]string{}
	for _, e := range got {
		names[e.Kind] = e.MaskedName
	}
	if names["cccd"] != "Nguyễn Văn ***" || names["bhyt"] != "Nguyễn Văn ***" || names["covid_app"] != "TRAN THI ***" {
		t.Fatalf("hub shows %v", names)
	}
	time.Sleep(500 * time.Millisecond) // the ack empties the outbox
	if code := d2.stop(); code != 0 {
		t.Fatalf("vaorad exit status after SIGTERM = %d", code)
	}
	assertNoPlaintext(t, "vaorad's log", []byte(d.Stderr()+d2.Stderr()))
	assertNoPlaintext(t, "vaorahub's log", []byte(h.Stderr()))
	if n := pendingInOutbox(t, state, "gate-s"); n != 0 {
		t.Fatalf("%d entries still in the outbox after the hub acked", n)
	}
}

// TestHubWithoutServiceKey: a hub that lacks the service key stores every entry, sealed, and shows it without a
// name; nothing is lost, and the log says why.
func TestHubWithoutServiceKey(t *testing.T) {
	empty := t.TempDir()
	h := startHub(t, "--keys", empty, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	d := start(t, "vaorad", "--device-id", "gate-k", "--broker", h.broker, "--state-dir", t.TempDir(), "--input", "stdin")
	d.scan(cccdAn)
	got := h.waitEntries(t, "gate-k", 1, 10*time.Second)[0]
	if got.MaskedName != "" || got.Kind != "cccd" {
		t.Fatalf("hub entry = %+v", got)
	}
	if !strings.Contains(h.Stderr(), "no service key") || !strings.Contains(h.Stderr(), "cannot open an entry's display fields") {
		t.Fatalf("the hub's log does not explain the missing names:\n%s", h.Stderr())
	}
}

// TestDeviceKeysRequired: a reader without the keys to seal with refuses to start (exit 2) and says what to copy.
func TestDeviceKeysRequired(t *testing.T) {
	dir := t.TempDir()
	d := start(t, "vaorad", "--keys", dir, "--device-id", "gate-1", "--broker", "tcp://127.0.0.1:1", "--state-dir", t.TempDir())
	if code := d.wait(10 * time.Second); code != 2 || !strings.Contains(d.Stderr(), filepath.Join(dir, "service.pub")+" is missing") {
		t.Fatalf("exit %d, stderr %q", code, d.Stderr())
	}
	// A private key where the public half belongs is refused: it would open every name the reader sealed.
	k, err := seal.Generate(seal.RoleService, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteKeyFile(filepath.Join(dir, "service.pub"), k, true); err != nil {
		t.Fatal(err)
	}
	d = start(t, "vaorad", "--keys", dir, "--device-id", "gate-1", "--broker", "tcp://127.0.0.1:1", "--state-dir", t.TempDir())
	if code := d.wait(10 * time.Second); code != 2 || !strings.Contains(d.Stderr(), "holds a private key") {
		t.Fatalf("exit %d, stderr %q", code, d.Stderr())
	}
}

func ring(t *testing.T, name string) seal.Ring {
	t.Helper()
	r, err := seal.LoadRing(filepath.Join(keysDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keyIDOf(t *testing.T, sealed string) string {
	t.Helper()
	id, err := seal.SealedKeyID(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Fatalf("key id %q: %v", id, err)
	}
	return id
}

// outboxEntries opens a stopped device's outbox and returns what it holds.
func outboxEntries(t *testing.T, stateDir, device string) []wire.Entry {
	t.Helper()
	ob, err := outbox.Open(filepath.Join(stateDir, "outbox.db"), device, outbox.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	es, err := ob.After(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
