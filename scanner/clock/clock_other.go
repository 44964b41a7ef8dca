//go:build !linux

package clock

import "time"

var processStart = time.Now()

func readBootID() string { return "" }

// sinceBoot falls back to process time where the kernel offers no boot clock: still monotonic within one run.
func sinceBoot() int64 { return int64(time.Since(processStart)) }

func synced() bool { return false }
