package feedback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/scanner/payload"
)

// hookServer is a receiver that answers with codes in turn (the last one repeated) and keeps what it got.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	codes    []int
	bodies   [][]byte
	headers  []http.Header
	requests int
}

func newHookServer(t *testing.T, codes ...int) *hookServer {
	h := &hookServer{codes: codes}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		code := h.codes[min(h.requests, len(h.codes)-1)]
		h.requests++
		h.bodies = append(h.bodies, b)
		h.headers = append(h.headers, r.Header.Clone())
		h.mu.Unlock()
		if r.Method != http.MethodPost {
			code = http.StatusMethodNotAllowed
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) got() (int, [][]byte, []http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests, slices.Clone(h.bodies), slices.Clone(h.headers)
}

var webhookTime = time.Date(2026, 3, 14, 7, 30, 0, 0, time.FixedZone("ICT", 7*3600))

func testWebhook(t *testing.T, opts WebhookOptions) *Webhook {
	t.Helper()
	if opts.Device == "" {
		opts.Device = "gate-1"
	}
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	opts.Now = func() time.Time { return webhookTime }
	w, err := NewWebhook(opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWebhookDelivers(t *testing.T) {
	srv := newHookServer(t, 200, 204)
	w := testWebhook(t, WebhookOptions{URL: srv.URL + "/hook"})
	w.Show(gate.Outcome{Result: "accepted", State: decide.Amber, Kind: payload.KindCCCD, Direction: "in",
		MaskedName: "Nguyễn Văn ***", Reasons: []payload.Reason{payload.GateReason(payload.CodeIdentityClaimed)},
		Receipt: gate.Receipt{Epoch: 0xfedcba9876543210, Seq: 42}})
	w.Show(gate.Outcome{Result: "rejected", State: decide.Red, Kind: payload.KindOther, Direction: "out",
		Reasons: []payload.Reason{{Code: "url", Severity: payload.SeverityError, Message: "A web address."}}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n, bodies, headers := srv.got()
	if n != 2 || w.Stats() != (WebhookStats{Delivered: 2}) {
		t.Fatalf("%d requests, stats %+v", n, w.Stats())
	}
	want := []string{
		`{"device":"gate-1","time":"2026-03-14T00:30:00Z","result":"accepted","state":"amber","kind":"cccd",` +
			`"direction":"in","masked_name":"Nguyễn Văn ***","reasons":["` + payload.CodeIdentityClaimed + `"],` +
			`"receipt":{"epoch":"fedcba9876543210","seq":42}}`,
		`{"device":"gate-1","time":"2026-03-14T00:30:00Z","result":"rejected","state":"red","kind":"other",` +
			`"direction":"out","reasons":["url"]}`,
	}
	for i := range want {
		if string(bodies[i]) != want[i] {
			t.Errorf("body %d:\n  got  %s\n  want %s", i, bodies[i], want[i])
		}
		h := headers[i]
		if h.Get("Content-Type") != "application/json" || len(h.Get("X-Vaora-Delivery")) != 32 ||
			h.Get("X-Vaora-Signature") != "" {
			t.Errorf("headers %d: %v", i, h)
		}
	}
	if headers[0].Get("X-Vaora-Delivery") == headers[1].Get("X-Vaora-Delivery") {
		t.Error("two decisions share a delivery id")
	}
	w.Show(gate.Outcome{Result: "rejected", State: decide.Red}) // after Close: dropped silently
	if n, _, _ := srv.got(); n != 2 {
		t.Errorf("a decision shown after Close was sent")
	}
}

func TestWebhookRetriesAfter500(t *testing.T) {
	srv := newHookServer(t, 500, 503, 200)
	w := testWebhook(t, WebhookOptions{URL: srv.URL})
	w.Show(gate.Outcome{Result: "accepted", State: decide.Green, Receipt: gate.Receipt{Epoch: 1, Seq: 1}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n, bodies, headers := srv.got()
	if n != 3 || w.Stats() != (WebhookStats{Delivered: 1}) {
		t.Fatalf("%d requests, stats %+v", n, w.Stats())
	}
	for i := 1; i < 3; i++ {
		if string(bodies[i]) != string(bodies[0]) ||
			headers[i].Get("X-Vaora-Delivery") != headers[0].Get("X-Vaora-Delivery") {
			t.Errorf("try %d is not the same delivery", i+1)
		}
	}
}

func TestWebhookGivesUp(t *testing.T) {
	srv := newHookServer(t, 500)
	var log lockedLog
	w := testWebhook(t, WebhookOptions{URL: srv.URL + "/hook?token=t0k3n-secret", Tries: 3, Log: log.logger()})
	for range 2 {
		w.Show(gate.Outcome{Result: "accepted", State: decide.Green, MaskedName: "Trần Thị ***"})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := srv.got(); n != 6 || w.Stats() != (WebhookStats{Failed: 2}) {
		t.Errorf("%d requests, stats %+v; want 2 decisions × 3 tries, both failed", n, w.Stats())
	}
	out := log.String()
	if strings.Count(out, "not delivered") != 1 || !strings.Contains(out, "HTTP 500") {
		t.Errorf("want one failure line naming HTTP 500:\n%s", out)
	}
	if strings.Contains(out, "t0k3n") || strings.Contains(out, "Trần") {
		t.Errorf("the log holds the URL's token or a name:\n%s", out)
	}
}

func TestWebhookRefusedIsNotRetried(t *testing.T) {
	srv := newHookServer(t, 400)
	w := testWebhook(t, WebhookOptions{URL: srv.URL})
	w.Show(gate.Outcome{Result: "rejected", State: decide.Red})
	w.Close()
	if n, _, _ := srv.got(); n != 1 || w.Stats() != (WebhookStats{Failed: 1}) {
		t.Errorf("%d requests, stats %+v", n, w.Stats())
	}
}

func TestWebhookConnectionRefused(t *testing.T) {
	srv := newHookServer(t, 200)
	url := srv.URL
	srv.Close()
	var log lockedLog
	w := testWebhook(t, WebhookOptions{URL: url, Tries: 2, Log: log.logger()})
	w.Show(gate.Outcome{Result: "rejected", State: decide.Red})
	w.Close()
	if w.Stats() != (WebhookStats{Failed: 1}) || !strings.Contains(log.String(), "refused") {
		t.Errorf("stats %+v, log:\n%s", w.Stats(), log.String())
	}
}

// TestWebhookNeverBlocks: while the receiver hangs, Show returns at once, the queue keeps the newest decisions and
// counts the ones it dropped, and Close gives up at its deadline.
func TestWebhookNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	var mu sync.Mutex
	var seqs []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d WebhookDecision
		json.NewDecoder(r.Body).Decode(&d)
		mu.Lock()
		seqs = append(seqs, d.Receipt.Seq)
		mu.Unlock()
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(free) // runs first
	var log lockedLog
	w := testWebhook(t, WebhookOptions{URL: srv.URL, Queue: 4, Timeout: time.Minute, FlushTimeout: 200 * time.Millisecond,
		Log: log.logger()})
	w.Show(gate.Outcome{Result: "accepted", Receipt: gate.Receipt{Seq: 1}})
	for { // the first one is on the wire
		mu.Lock()
		n := len(seqs)
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 2; i <= 1000; i++ {
		w.Show(gate.Outcome{Result: "accepted", Receipt: gate.Receipt{Seq: uint64(i)}})
	}
	if s := w.Stats(); s.Dropped != 1000-1-4 {
		t.Errorf("dropped %d, want %d", s.Dropped, 1000-1-4)
	}
	err := w.Close() // the receiver still hangs: Close gives up after FlushTimeout
	if err == nil || !strings.Contains(err.Error(), "4 decisions not delivered") {
		t.Errorf("Close = %v", err)
	}
	if s := w.Stats(); s.Dropped != 1000-1 || s.Failed != 1 || s.Delivered != 0 {
		t.Errorf("stats %+v", s)
	}
	free()
	// The first drop is logged at once, the rest at Close (they came within a minute); then the shutdown loss.
	out := log.String()
	if strings.Count(out, "queue full") != 2 || !strings.Contains(out, "dropped=1 dropped_total=1 ") ||
		!strings.Contains(out, "dropped_total=995") || !strings.Contains(out, "not delivered at shutdown") {
		t.Errorf("log:\n%s", out)
	}
}

// TestWebhookQueueKeepsNewest: after an overflow the receiver gets the newest decisions, in order.
func TestWebhookQueueKeepsNewest(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var seqs []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d WebhookDecision
		json.NewDecoder(r.Body).Decode(&d)
		mu.Lock()
		seqs = append(seqs, d.Receipt.Seq)
		first := len(seqs) == 1
		mu.Unlock()
		if first {
			<-release
		}
	}))
	t.Cleanup(srv.Close)
	var log lockedLog
	w := testWebhook(t, WebhookOptions{URL: srv.URL, Queue: 3, Log: log.logger()})
	w.Show(gate.Outcome{Result: "accepted", Receipt: gate.Receipt{Seq: 1}})
	for {
		mu.Lock()
		n := len(seqs)
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 2; i <= 10; i++ {
		w.Show(gate.Outcome{Result: "accepted", Receipt: gate.Receipt{Seq: uint64(i)}})
	}
	close(release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seqs, []uint64{1, 8, 9, 10}) || w.Stats() != (WebhookStats{Delivered: 4, Dropped: 6}) {
		t.Errorf("received %v, stats %+v", seqs, w.Stats())
	}
	if out := log.String(); !strings.Contains(out, "queue full") || !strings.Contains(out, "dropped_total=6") {
		t.Errorf("the drops were not logged:\n%s", out)
	}
}

func TestWebhookSignature(t *testing.T) {
	srv := newHookServer(t, 200)
	w := testWebhook(t, WebhookOptions{URL: srv.URL, Secret: "shared-secret"})
	w.Show(gate.Outcome{Result: "accepted", State: decide.Green})
	w.Close()
	_, bodies, headers := srv.got()
	if len(bodies) != 1 {
		t.Fatalf("%d requests", len(bodies))
	}
	sig, ok := strings.CutPrefix(headers[0].Get("X-Vaora-Signature"), "sha256=")
	got, err := hex.DecodeString(sig)
	m := hmac.New(sha256.New, []byte("shared-secret"))
	m.Write(bodies[0])
	if !ok || err != nil || !hmac.Equal(got, m.Sum(nil)) {
		t.Errorf("signature %q does not verify", headers[0].Get("X-Vaora-Signature"))
	}
	m = hmac.New(sha256.New, []byte("another secret"))
	m.Write(bodies[0])
	if hmac.Equal(got, m.Sum(nil)) {
		t.Error("the signature verifies under another secret")
	}
}

func TestWebhookRedirectNotFollowed(t *testing.T) {
	target := newHookServer(t, 200)
	srv := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(srv.Close)
	w := testWebhook(t, WebhookOptions{URL: srv.URL})
	w.Show(gate.Outcome{Result: "rejected", State: decide.Red})
	w.Close()
	if n, _, _ := target.got(); n != 0 || w.Stats() != (WebhookStats{Failed: 1}) {
		t.Errorf("redirect: %d requests at the target, stats %+v", n, w.Stats())
	}
}

func TestWebhookOptionsRefused(t *testing.T) {
	for _, o := range []WebhookOptions{
		{URL: "ftp://example.com/", Device: "d"},
		{URL: "/relative", Device: "d"},
		{URL: "http://example.com/"},
		{URL: "http://%zz", Device: "d"},
	} {
		if w, err := NewWebhook(o); err == nil {
			w.Close()
			t.Errorf("NewWebhook(%+v) accepted", o)
		}
	}
}
