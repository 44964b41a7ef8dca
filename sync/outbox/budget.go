package outbox

import "errors"

// ErrFull is what Append returns when the storage budget cannot hold the entry: nothing was stored. The gate then
// refuses (full_policy: refuse) or admits unrecorded (full_policy: admit).
var ErrFull = errors.New("storage full: the outbox holds as many unsynced entries as storage.budget allows, so this " +
	"scan was not recorded; get the reader's network and the hub working so the waiting entries are confirmed and " +
	"deleted, or raise storage.budget in vaorad.yaml if the disk has room")

// hysteresis is how many percentage points below a threshold the usage must fall before the level goes down, so a
// backlog hovering at 50 % does not raise and clear the alarm with every scan and ack.
const hysteresis = 2

// levelOf is the alarm level of st: 100 once an Append has been refused (until one succeeds or deletes bring the
// usage under 98 %) or the usage is at the budget; else the highest of 80 and 50 the usage has reached.
func levelOf(st state, live, budget int64, prev int) int {
	if budget <= 0 {
		return 0
	}
	if st.full || live >= budget {
		return 100
	}
	for _, t := range []int64{80, 50} {
		if live*100 >= t*budget || prev >= int(t) && live*100 >= (t-hysteresis)*budget {
			return int(t)
		}
	}
	return 0
}

// publishLevel logs a change of level and calls OnLevel. Callers hold no lock and no transaction.
func (o *Outbox) publishLevel() {
	o.lmu.Lock()
	defer o.lmu.Unlock()
	o.smu.Lock()
	st := o.st
	o.smu.Unlock()
	if st.level == o.notified {
		return
	}
	prev := o.notified
	o.notified = st.level
	attrs := []any{"level", st.level, "pending", st.pending, "live_bytes", o.liveBytes(st), "budget", o.opts.Budget,
		"full_policy", o.opts.FullPolicy}
	full := "the gate refuses them (storage.full_policy: refuse)"
	if o.opts.FullPolicy == "admit" {
		full = "the gate admits people without recording them (storage.full_policy: admit)"
	}
	switch {
	case st.level < prev:
		o.log.Info("outbox storage is back below its alarm level: acked entries were deleted", append(attrs, "was", prev)...)
	case st.level == 100:
		o.log.Error("outbox storage is FULL: new scans are not recorded and "+full+" until the hub confirms the "+
			"entries waiting; check the reader's network and the hub, or raise storage.budget", attrs...)
	case st.level == 80:
		o.log.Error("outbox storage is 80% full: entries are not reaching the hub; at 100% new scans are not "+
			"recorded and "+full+"; check the reader's network and the hub", attrs...)
	default:
		o.log.Warn("outbox storage is half full: entries are waiting for the hub; check the reader's network and the hub", attrs...)
	}
	if o.opts.OnLevel != nil {
		o.opts.OnLevel(st.level)
	}
}
