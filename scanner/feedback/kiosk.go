package feedback

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/scanner/payload"
)

//go:embed kiosk
var kioskFiles embed.FS

// DefaultKioskNotice is the privacy notice a kiosk shows when the site sets none: what is recorded, why, for how
// long and who sees it (PDPL 91/2025/QH15 asks for a notice before processing). A site that keeps entries longer,
// or for another purpose, must set its own.
const DefaultKioskNotice = "Thiết bị này ghi nhận thời gian, hướng vào/ra, họ tên đã che và một mã tham chiếu có khoá " +
	"của giấy tờ; thông tin đầy đủ trong mã được mã hoá, chỉ cơ quan y tế có thẩm quyền đọc được. Mục đích: kiểm soát " +
	"ra vào và truy vết dịch tễ. Lưu tại máy chủ 21 ngày rồi xoá; chủ địa điểm chỉ thấy họ tên đã che. Không lưu ảnh.\n" +
	"This reader records the time, in or out, your masked name and a keyed reference to your card; the full details in " +
	"your code are encrypted so that only the health authority can read them. Purpose: entry control and health " +
	"tracing. Kept at the hub for 21 days, then deleted; the venue sees only the masked name. No images are kept."

// KioskOptions configures a Kiosk. Zero values take the defaults.
type KioskOptions struct {
	Device     string        // the reader's name, shown small on the screen
	Notice     string        // the privacy notice in small print; "" is DefaultKioskNotice
	IdleAfter  time.Duration // how long a result stays before the page returns to "please scan"; 0 is 5 s
	MaxClients int           // screens that may follow the stream at once; 0 is 4
	Log        *slog.Logger
	Now        func() time.Time // the clock of the decision time and the time shown; nil is time.Now
	// Location is the zone of the time shown; nil is Vietnam (UTC+7), as decide reads "already in since 08:12":
	// a Pi's system zone is often left at UTC.
	Location *time.Location
	// Direction, for a toggle device, is the direction it starts with (in or out): "please scan" then says which
	// way the next scan goes, and follows the guard's changes. "": a fixed or automatic device; not shown.
	Direction string
}

// Kiosk is the page vaorad serves for a screen attached to the reader: the result as a full-screen colour, pushed
// to the page by server-sent events. It implements gate.Feedback and http.Handler (/ the page, /events the stream,
// /state the current state as JSON); the page uses relative addresses, so it may be mounted under a prefix with
// http.StripPrefix. Show never waits for a screen: each screen has a one-slot mailbox that always holds the newest
// state, which is all a kiosk needs.
type Kiosk struct {
	opts      KioskOptions
	page      []byte // index.html with the notice and device filled in
	mux       *http.ServeMux
	keepalive time.Duration

	mu      sync.Mutex
	seq     uint64
	last    kioskView // Seq 0: nothing shown yet
	dir     string    // a toggle device's direction, shown while idle
	clients map[*kioskClient]struct{}
	closed  chan struct{}
	once    sync.Once
}

type kioskClient struct {
	mailbox chan []byte // capacity 1: the newest event not yet written
}

// kioskView is what the page shows for one outcome, labels included, so that the meaning of each colour is decided
// here, once, and tested in Go. It carries no personal data but the masked name.
type kioskView struct {
	Seq      uint64  `json:"seq"`
	AtMS     float64 `json:"at_ms"`  // decision time, Unix ms (server clock, µs precision)
	Screen   string  `json:"screen"` // idle | green | amber | blue | red
	Recorded bool    `json:"recorded"`
	Icon     string  `json:"icon"`
	Word     string  `json:"word"`     // XANH · GREEN
	Headline string  `json:"headline"` // ĐÃ GHI NHẬN · RECORDED
	Detail   string  `json:"detail"`   // the line under it: verified, not verified, NOT RECORDED
	Name     string  `json:"name"`     // the masked name, never more
	Dir      string  `json:"direction"`
	Kind     string  `json:"kind"`
	Time     string  `json:"time"` // HH:MM:SS
	Message  string  `json:"message"`
	IdleInMS int64   `json:"idle_in_ms"`     // how long the page keeps this before "please scan"
	Replay   bool    `json:"replay"`         // a state re-sent to a page that (re)connected: no latency sample
	IdleDir  string  `json:"idle_direction"` // a toggle device's direction, shown under "please scan"; "" none
}

const (
	kioskNotRecorded = "KHÔNG ĐƯỢC GHI NHẬN · NOT RECORDED"
	kioskWriteWait   = 10 * time.Second // a screen that takes longer to accept a write is dropped
)

var (
	kioskWords = map[decide.State]string{decide.Green: "XANH · GREEN", decide.Amber: "VÀNG · AMBER",
		decide.Blue: "LAM · BLUE", decide.Red: "ĐỎ · RED"}
	kioskDirections = map[string]string{"in": "VÀO · IN", "out": "RA · OUT"}
	kioskKinds      = map[payload.Kind]string{payload.KindCCCD: "CCCD", payload.KindCovidApp: "PC-Covid",
		payload.KindBHYT: "BHYT", payload.KindVaoraPass: "vaora pass"}
)

// NewKiosk builds the page and its stream.
func NewKiosk(opts KioskOptions) *Kiosk {
	if opts.Notice == "" {
		opts.Notice = DefaultKioskNotice
	}
	if opts.IdleAfter <= 0 {
		opts.IdleAfter = 5 * time.Second
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 4
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.FixedZone("ICT", 7*3600)
	}
	k := &Kiosk{opts: opts, mux: http.NewServeMux(), keepalive: 15 * time.Second,
		clients: map[*kioskClient]struct{}{}, closed: make(chan struct{}), dir: opts.Direction}
	tmpl := template.Must(template.ParseFS(kioskFiles, "kiosk/index.html"))
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]string{"Device": opts.Device, "Notice": opts.Notice}); err != nil {
		panic("feedback: kiosk page template: " + err.Error()) // a bug in the embedded page, caught by the tests
	}
	k.page = b.Bytes()
	sub, _ := fs.Sub(kioskFiles, "kiosk")
	k.mux.HandleFunc("GET /{$}", k.servePage)
	k.mux.Handle("GET /kiosk.js", http.FileServerFS(sub))
	k.mux.Handle("GET /kiosk.css", http.FileServerFS(sub))
	k.mux.HandleFunc("GET /events", k.serveEvents)
	k.mux.HandleFunc("GET /state", k.serveState)
	return k
}

// Show implements gate.Feedback. It does not block: a screen that is behind gets only the newest state.
func (k *Kiosk) Show(o gate.Outcome) {
	v := kioskViewOf(o, k.opts.Now().In(k.opts.Location))
	k.mu.Lock()
	defer k.mu.Unlock()
	if o.Result == "direction" && k.dir != "" {
		k.dir = o.Direction
	}
	k.seq++
	v.Seq = k.seq
	v.IdleInMS = k.opts.IdleAfter.Milliseconds()
	v.IdleDir = kioskDirections[k.dir]
	k.last = v
	ev := kioskFrame(v)
	for c := range k.clients {
		select {
		case c.mailbox <- ev:
		default: // the screen has not taken the previous state yet: replace it
			select {
			case <-c.mailbox:
			default:
			}
			c.mailbox <- ev // every send is made under k.mu: the slot is free now
		}
	}
}

// Close ends every open stream, so that an http.Server can shut down; the pages reconnect to the next vaorad.
func (k *Kiosk) Close() error {
	k.once.Do(func() { close(k.closed) })
	return nil
}

func (k *Kiosk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'none'; object-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	k.mux.ServeHTTP(w, r)
}

func (k *Kiosk) servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(k.page)
}

// current is the state a page that (re)loads should show: the last outcome while it is fresh, else idle.
// Called with k.mu held.
func (k *Kiosk) current() kioskView {
	dir := kioskDirections[k.dir]
	if k.last.Seq == 0 {
		return kioskView{Screen: "idle", Replay: true, IdleDir: dir}
	}
	v := k.last
	v.Replay = true
	at := time.UnixMicro(int64(v.AtMS * 1000))
	left := k.opts.IdleAfter - k.opts.Now().Sub(at)
	if left <= 0 {
		return kioskView{Seq: v.Seq, AtMS: v.AtMS, Screen: "idle", Replay: true, IdleDir: dir}
	}
	v.IdleInMS = max(left.Milliseconds(), 1)
	return v
}

func (k *Kiosk) serveState(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	v := k.current()
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

func (k *Kiosk) serveEvents(w http.ResponseWriter, r *http.Request) {
	c := &kioskClient{mailbox: make(chan []byte, 1)}
	k.mu.Lock()
	if len(k.clients) >= k.opts.MaxClients {
		n := len(k.clients)
		k.mu.Unlock()
		k.opts.Log.Warn("kiosk: screen refused, too many open", "device", k.opts.Device, "screens", n,
			"max", k.opts.MaxClients)
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("too many kiosk screens (%d) follow this reader; close one", n),
			http.StatusServiceUnavailable)
		return
	}
	k.clients[c] = struct{}{}
	c.mailbox <- kioskFrame(k.current()) // under k.mu, so no outcome falls between this state and the next event
	n := len(k.clients)
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.clients, c)
		k.mu.Unlock()
	}()
	k.opts.Log.Debug("kiosk: screen connected", "device", k.opts.Device, "screens", n)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	send := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(kioskWriteWait)) // also lifts a server-wide WriteTimeout
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: 1000\n\n")) {
		k.opts.Log.Warn("kiosk: cannot stream to the screen (a proxy or middleware that does not flush?)",
			"device", k.opts.Device)
		return
	}
	keepalive := time.NewTicker(k.keepalive)
	defer keepalive.Stop()
	for {
		var b []byte
		select {
		case <-r.Context().Done():
			return
		case <-k.closed:
			return
		case b = <-c.mailbox:
		case <-keepalive.C:
			b = []byte(": keepalive\n\n")
		}
		if !send(b) {
			k.opts.Log.Debug("kiosk: screen dropped", "device", k.opts.Device)
			return
		}
	}
}

// kioskFrame is one server-sent event. JSON has no raw newlines, so the data fits one data: line.
func kioskFrame(v kioskView) []byte {
	data, _ := json.Marshal(v)
	b := make([]byte, 0, len(data)+48)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, v.Seq, 10)
	b = append(b, "\nevent: outcome\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// kioskViewOf decides what the screen says. Only an accepted outcome (committed to storage) is green, amber or blue;
// a refusal or a fault is red and says NOT RECORDED, even when the site's policy admits the person.
func kioskViewOf(o gate.Outcome, now time.Time) kioskView {
	v := kioskView{AtMS: float64(now.UnixMicro()) / 1000, Name: o.MaskedName, Dir: kioskDirections[o.Direction],
		Kind: kioskKinds[o.Kind], Time: now.Format("15:04:05"), Message: kioskMessage(o)}
	recorded := o.Result == "accepted"
	switch {
	case o.Result == "direction": // the guard set the direction: not a scan
		v.Screen, v.Icon, v.Word = "direction", "⇄", "CHIỀU · DIRECTION"
		v.Headline, v.Detail = kioskDirections[o.Direction], "Các lượt quét tiếp theo · The next scans"
		v.Dir, v.Kind = "", "" // the headline says it
		return v
	case recorded && o.State == decide.Green:
		v.Screen, v.Icon, v.Headline = "green", "✔", "ĐÃ GHI NHẬN · RECORDED"
		v.Detail = "Hợp lệ, chưa xác minh danh tính · Valid, identity not verified"
		if o.Kind == payload.KindVaoraPass {
			v.Detail = "Đã xác minh danh tính · Identity verified"
		}
	case recorded && o.State == decide.Amber:
		v.Screen, v.Icon, v.Headline = "amber", "!", "ĐÃ GHI NHẬN · RECORDED"
		v.Detail = "Cần lưu ý · Needs a look" // a stale stop list, an exit without an entry
		if slices.ContainsFunc(o.Reasons, func(r payload.Reason) bool { return r.Code == payload.CodeIdentityClaimed }) {
			v.Detail = "Chưa xác minh danh tính — đối chiếu giấy tờ · Identity not verified — check the card"
		}
	case recorded && o.State == decide.Blue:
		v.Screen, v.Icon, v.Headline = "blue", "↺", "ĐÃ QUÉT RỒI · ALREADY IN"
		if o.Direction == "out" {
			v.Headline = "ĐÃ QUÉT RỒI · ALREADY OUT"
		}
		v.Detail = "Lượt trùng, đã ghi nhận · Duplicate, recorded"
	case recorded: // red and recorded: refused by the stop list, and the visit kept
		v.Screen, v.Icon, v.Headline, v.Detail = "red", "✘", "TỪ CHỐI · REFUSED", "ĐÃ GHI NHẬN · RECORDED"
	case o.Result == "rejected":
		v.Screen, v.Icon, v.Headline, v.Detail = "red", "✘", "TỪ CHỐI · REFUSED", kioskNotRecorded
	default: // fault, or a result this page does not know
		v.Screen, v.Icon, v.Headline, v.Detail = "red", "⚠", "LỖI · FAULT", kioskNotRecorded
	}
	v.Recorded = recorded
	v.Word = kioskWords[decide.State(v.Screen)]
	return v
}

// kioskMessage is the reason the guard most needs: for a fault the gate's own (it comes last), else the first error,
// else the first warning.
func kioskMessage(o gate.Outcome) string {
	rs := o.Reasons
	if len(rs) == 0 {
		return ""
	}
	if o.Result == "fault" {
		return rs[len(rs)-1].Message
	}
	for _, r := range rs {
		if r.Severity == payload.SeverityError {
			return r.Message
		}
	}
	return rs[0].Message
}

// clientCount is for tests.
func (k *Kiosk) clientCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.clients)
}
