// Package clock stamps each scan with what the device knows about time. A Pi has no real-time clock: until NTP
// synchronises, the wall clock may be days off, so every entry carries the wall time together with the boot id, the
// time since boot, and whether the kernel considered the clock synchronised. The hub can re-base the pre-sync
// entries of one boot; order always comes from seq, never from clocks.
package clock

import "time"

// Stamp is the time of one scan.
type Stamp struct {
	Wall   time.Time // wall clock, UTC
	BootID string    // kernel boot id ("" when the kernel does not expose one)
	MonoNS int64     // nanoseconds since boot (CLOCK_BOOTTIME: it keeps counting through suspend)
	Synced bool      // the kernel reported the clock synchronised (adjtimex without STA_UNSYNC)
}

// Clock reads stamps. Its zero value is not usable; call New.
type Clock struct {
	bootID string
}

// New reads the boot id once: it cannot change while the process lives.
func New() *Clock { return &Clock{bootID: readBootID()} }

// Now stamps the present moment.
func (c *Clock) Now() Stamp {
	return Stamp{Wall: time.Now().UTC(), BootID: c.bootID, MonoNS: sinceBoot(), Synced: synced()}
}
