package handheld

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"
)

//go:generate go run ./testdata/gen

// EvdevOptions configures a reader in keyboard mode ("keyboard wedge"), read from its Linux input event device.
type EvdevOptions struct {
	Path        string        // the event device; best its udev name, /dev/input/by-id/usb-...-event-kbd
	Layout      string        // keyboard layout the reader types in: "us" (default), "de" or "fr"
	Grab        bool          // hold the device alone (EVIOCGRAB) so codes never reach a console or login prompt; true in production
	Gap         time.Duration // silence that ends a code typed without Enter; 0 means DefaultGap
	MaxBytes    int           // longest code; 0 means payload.MaxTextLen
	AltCodePage string        // what ALT+0nnn types: "windows-1252" (default, as Windows reads it) or "windows-1258"
	RecordSize  int           // bytes per input_event; 0 means this machine's; set only to replay a recording made on another architecture (24: 64-bit, 16: 32-bit ARM)
	Log         *slog.Logger  // nil discards; code contents are never logged
}

// evdevConfig is what OpenEvdev makes of its options.
type evdevConfig struct {
	opt EvdevOptions
	dec *keyDecoder
	log *slog.Logger
}

func (opt EvdevOptions) check() (evdevConfig, error) {
	if opt.Path == "" {
		return evdevConfig{}, errors.New("keyboard reader: no device path (write e.g. evdev:/dev/input/by-id/usb-...-event-kbd)")
	}
	fail := func(err error) (evdevConfig, error) {
		return evdevConfig{}, fmt.Errorf("keyboard reader %s: %w", opt.Path, err)
	}
	lay, err := layoutByName(opt.Layout)
	if err != nil {
		return fail(err)
	}
	var page *charmap.Charmap
	switch strings.ToLower(opt.AltCodePage) {
	case "", Windows1252:
		page = charmap.Windows1252
	case Windows1258:
		page = charmap.Windows1258
	default:
		return fail(fmt.Errorf("ALT code page %q is not supported: write %s or %s", opt.AltCodePage, Windows1252, Windows1258))
	}
	size, err := recordSize(opt.RecordSize)
	if err != nil {
		return fail(err)
	}
	fo, err := framing(opt.MaxBytes, opt.Gap)
	if err != nil {
		return fail(err)
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return evdevConfig{opt: opt, log: log, dec: newKeyDecoder(lay, size, page, fo)}, nil
}
