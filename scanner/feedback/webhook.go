package feedback

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/vaora/vaora/scanner/gate"
)

// Defaults of WebhookOptions: five tries, 2 s apart and doubling, give up after about a minute at worst.
const (
	DefaultWebhookTimeout = 5 * time.Second
	DefaultWebhookTries   = 5
	DefaultWebhookBackoff = 2 * time.Second
	DefaultWebhookQueue   = 256
	DefaultWebhookFlush   = 5 * time.Second
	webhookMaxBackoff     = 30 * time.Second
)

// WebhookOptions configures Webhook.
type WebhookOptions struct {
	URL    string // where each decision is POSTed; http or https
	Device string // the device id the decisions carry
	// Secret, when set, signs each body: X-Vaora-Signature: sha256=<hex HMAC-SHA256 of the body under Secret>.
	Secret string
	// Timeout bounds one try; default DefaultWebhookTimeout.
	Timeout time.Duration
	// Tries bounds the tries of one decision; default DefaultWebhookTries. A 4xx answer other than 408, 425 and
	// 429 is not tried again: the receiver refuses that body.
	Tries int
	// Backoff is the wait before the second try, doubled for each later one (at most 30 s); default
	// DefaultWebhookBackoff.
	Backoff time.Duration
	// Queue bounds the decisions waiting; when it is full the oldest is dropped and counted. Default
	// DefaultWebhookQueue.
	Queue int
	// FlushTimeout bounds how long Close goes on delivering what is queued; default DefaultWebhookFlush.
	FlushTimeout time.Duration
	// Client sends the requests; default a client that follows no redirect (a redirected POST would become a GET).
	Client *http.Client
	Now    func() time.Time // default time.Now
	Log    *slog.Logger
}

// WebhookDecision is the JSON body of one POST. It holds the masked name and nothing else personal: no identifier,
// no subject key, no date of birth.
type WebhookDecision struct {
	Device     string          `json:"device"`
	Time       time.Time       `json:"time"`   // when the device decided, UTC, by its clock (maybe unsynchronised)
	Result     string          `json:"result"` // accepted | rejected | fault
	State      string          `json:"state"`  // green | amber | blue | red
	Kind       string          `json:"kind"`
	Direction  string          `json:"direction"`
	MaskedName string          `json:"masked_name,omitempty"`
	Reasons    []string        `json:"reasons"` // reason codes
	Receipt    *WebhookReceipt `json:"receipt,omitempty"`
}

// WebhookReceipt names an accepted entry as the hub will know it: (device, epoch, seq).
type WebhookReceipt struct {
	Epoch string `json:"epoch"` // 16 hex digits: a JSON number would lose bits in JavaScript
	Seq   uint64 `json:"seq"`
}

// WebhookStats counts what became of the decisions shown.
type WebhookStats struct {
	Delivered uint64 // a 2xx answer came back
	Failed    uint64 // given up after the tries, or refused by the receiver
	Dropped   uint64 // pushed out of a full queue, or still queued when Close's flush ran out of time
}

// Webhook POSTs each decision as JSON to a URL. It implements gate.Feedback: Show only queues, one goroutine
// delivers in order with retries, so a slow or dead receiver never holds up the scan path.
type Webhook struct {
	url, host string
	device    string
	secret    []byte
	timeout   time.Duration
	tries     int
	backoff   time.Duration
	size      int
	flush     time.Duration
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger

	ctx    context.Context // cancelled when Close's flush runs out of time
	cancel context.CancelFunc

	mu       sync.Mutex
	queue    []webhookItem
	stats    WebhookStats
	closed   bool
	reported uint64    // drops already logged
	lastDrop time.Time // when drops were last logged

	wake    chan struct{}
	closing chan struct{}
	exited  chan struct{}
	once    sync.Once
	failed  map[string]bool // worker-only: failure kinds already logged
}

type webhookItem struct{ body []byte }

// NewWebhook starts the delivery goroutine. Close stops it.
func NewWebhook(opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, errors.New("webhook: the URL does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webhook: URL scheme %q host %q: want http:// or https:// and a host", u.Scheme, u.Host)
	}
	if opts.Device == "" {
		return nil, errors.New("webhook: no device id")
	}
	w := &Webhook{url: opts.URL, host: u.Scheme + "://" + u.Host, device: opts.Device, secret: []byte(opts.Secret),
		timeout: opts.Timeout, tries: opts.Tries, backoff: opts.Backoff, size: opts.Queue,
		flush: opts.FlushTimeout, client: opts.Client, now: opts.Now, log: opts.Log,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), exited: make(chan struct{}),
		failed: map[string]bool{}}
	if w.timeout <= 0 {
		w.timeout = DefaultWebhookTimeout
	}
	if w.tries <= 0 {
		w.tries = DefaultWebhookTries
	}
	if w.backoff <= 0 {
		w.backoff = DefaultWebhookBackoff
	}
	if w.size <= 0 {
		w.size = DefaultWebhookQueue
	}
	if w.flush <= 0 {
		w.flush = DefaultWebhookFlush
	}
	if w.client == nil {
		w.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w, nil
}

// Show implements gate.Feedback. It never waits: a full queue drops its oldest decision.
func (w *Webhook) Show(o gate.Outcome) {
	if o.Result == "direction" {
		return // the webhook reports decisions; a direction change is in the log
	}
	d := WebhookDecision{Device: w.device, Time: w.now().UTC(), Result: o.Result, State: string(o.State),
		Kind: string(o.Kind), Direction: o.Direction, MaskedName: o.MaskedName, Reasons: make([]string, 0, len(o.Reasons))}
	for _, r := range o.Reasons {
		d.Reasons = append(d.Reasons, r.Code)
	}
	if o.Result == "accepted" {
		d.Receipt = &WebhookReceipt{Epoch: fmt.Sprintf("%016x", o.Receipt.Epoch), Seq: o.Receipt.Seq}
	}
	body, err := json.Marshal(d)
	if err != nil {
		return // strings and numbers only: cannot happen
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if len(w.queue) >= w.size {
		w.queue[0] = webhookItem{}
		w.queue = w.queue[1:]
		w.stats.Dropped++
	}
	w.queue = append(w.queue, webhookItem{body: body})
	n, total := w.dropsToReport(false)
	w.mu.Unlock()
	if n > 0 {
		w.logDrops(n, total)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats reports what became of the decisions so far.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close stops taking decisions and goes on delivering the queued ones for up to FlushTimeout. It reports the
// decisions it could not deliver in that time.
func (w *Webhook) Close() error {
	var err error
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.closing)
		t := time.NewTimer(w.flush)
		select {
		case <-w.exited:
		case <-t.C:
			w.cancel()
			<-w.exited
		}
		t.Stop()
		w.cancel()
		w.mu.Lock()
		n, total := w.dropsToReport(true)
		left := len(w.queue)
		w.stats.Dropped += uint64(left)
		w.queue = nil
		w.mu.Unlock()
		if n > 0 {
			w.logDrops(n, total)
		}
		if left > 0 {
			err = fmt.Errorf("webhook: %d decisions not delivered to %s within the %v flush", left, w.host, w.flush)
			w.log.Warn("webhook: decisions not delivered at shutdown", "host", w.host, "count", left)
		}
	})
	return err
}

func (w *Webhook) next() (webhookItem, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return webhookItem{}, false
	}
	it := w.queue[0]
	w.queue[0] = webhookItem{}
	w.queue = w.queue[1:]
	return it, true
}

func (w *Webhook) run() {
	defer close(w.exited)
	for w.ctx.Err() == nil {
		it, ok := w.next()
		if ok {
			w.deliver(it)
			continue
		}
		select {
		case <-w.wake:
		case <-w.closing:
			if w.empty() {
				return
			}
		}
	}
}

func (w *Webhook) empty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) == 0
}

// dropsToReport says how many queue drops to log now: the first at once, later ones at most once a minute (and
// all that are left when forced, at Close). Call with mu held.
func (w *Webhook) dropsToReport(force bool) (n, total uint64) {
	total = w.stats.Dropped
	if total == w.reported || !force && !w.lastDrop.IsZero() && time.Since(w.lastDrop) < time.Minute {
		return 0, total
	}
	n, w.reported, w.lastDrop = total-w.reported, total, time.Now()
	return n, total
}

func (w *Webhook) logDrops(n, total uint64) {
	w.log.Warn("webhook: queue full; the oldest decisions were dropped", "host", w.host, "dropped", n,
		"dropped_total", total, "queue", w.size)
}

// deliver tries one decision until it is taken, refused, or the tries run out.
func (w *Webhook) deliver(it webhookItem) {
	id := make([]byte, 16)
	rand.Read(id)
	delivery := hex.EncodeToString(id)
	var sig string
	if len(w.secret) > 0 {
		m := hmac.New(sha256.New, w.secret)
		m.Write(it.body)
		sig = "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	wait := w.backoff
	for try := 1; ; try++ {
		retry, err := w.post(it.body, delivery, sig)
		if err == nil {
			w.count(func(s *WebhookStats) { s.Delivered++ })
			if len(w.failed) > 0 {
				w.log.Info("webhook: delivering again", "host", w.host)
				clear(w.failed)
			}
			return
		}
		if !retry || try >= w.tries || w.ctx.Err() != nil {
			w.count(func(s *WebhookStats) { s.Failed++ })
			if kind := err.Error(); !w.failed[kind] && len(w.failed) < 16 {
				w.failed[kind] = true
				w.log.Error("webhook: a decision was not delivered; further failures of this kind are not logged",
					"host", w.host, "tries", try, "err", err)
			}
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, webhookMaxBackoff)
	}
}

func (w *Webhook) count(f func(*WebhookStats)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(&w.stats)
}

// post makes one try. retry says whether another try may succeed.
func (w *Webhook) post(body []byte, delivery, sig string) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(w.ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vaora-webhook")
	req.Header.Set("X-Vaora-Delivery", delivery) // the same on every try: the receiver can drop repeats
	if sig != "" {
		req.Header.Set("X-Vaora-Signature", sig)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a token: never log it
		}
		return true, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return false, nil
	case code >= 300 && code < 400:
		return false, fmt.Errorf("HTTP %d: redirects are not followed; configure the final URL", code)
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly || code == http.StatusTooManyRequests:
		return true, fmt.Errorf("HTTP %d", code)
	case code < 500:
		return false, fmt.Errorf("HTTP %d: the receiver refused the decision", code)
	}
	return true, fmt.Errorf("HTTP %d", code)
}
