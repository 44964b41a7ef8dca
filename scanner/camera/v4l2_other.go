//go:build !linux

package camera

import (
	"context"
	"errors"
	"log/slog"
)

// errNoV4L2 is what a camera input gives on a system without V4L2: vaora's cameras are Linux devices.
var errNoV4L2 = errors.New("camera input needs Linux (V4L2); use dir: to replay pictures on this system")

// V4L2 exists on other systems only so that the daemon builds there; it never yields a frame.
type V4L2 struct{}

// OpenV4L2 always fails outside Linux.
func OpenV4L2(path string, opt V4L2Options, log *slog.Logger) (*V4L2, error) {
	return nil, errNoV4L2
}

func (*V4L2) NextFrame(context.Context) (Frame, error) { return Frame{}, errNoV4L2 }
func (*V4L2) Close() error                             { return nil }
