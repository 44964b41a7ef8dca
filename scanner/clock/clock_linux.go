package clock

import (
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func sinceBoot() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return int64(time.Since(processStart))
	}
	return ts.Nano()
}

// synced asks the kernel, as timedatectl does: adjtimex reports STA_UNSYNC until an NTP client has disciplined the
// clock.
func synced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}

var processStart = time.Now()
