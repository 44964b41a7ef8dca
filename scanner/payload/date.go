package payload

import (
	"fmt"
	"strings"
	"time"
)

// vietnam is UTC+7 without daylight saving. A card's dates are local dates, so
// "in the future" is judged on the local calendar; a fixed zone keeps the
// package independent of the time zone database.
var vietnam = time.FixedZone("ICT", 7*60*60)

// civilDate is a calendar date; m and d are 0 when the code hides or lacks them.
type civilDate struct{ y, m, d int }

func localDate(now time.Time) civilDate {
	t := now.In(vietnam)
	return civilDate{t.Year(), int(t.Month()), t.Day()}
}

// key orders dates; a missing part sorts first, so a year-only date is never
// "after" a full date in the same year.
func (c civilDate) key() int { return c.y*10000 + c.m*100 + c.d }

func (c civilDate) after(o civilDate) bool { return c.key() > o.key() }

func (c civilDate) iso() string {
	switch {
	case c.m == 0:
		return fmt.Sprintf("%04d", c.y)
	case c.d == 0:
		return fmt.Sprintf("%04d-%02d", c.y, c.m)
	}
	return fmt.Sprintf("%04d-%02d-%02d", c.y, c.m, c.d)
}

// makeDate checks y, m, d. With partial, d or both d and m may be 0: some
// older people's records carry only a birth year.
func makeDate(y, m, d int, partial bool) (civilDate, bool) {
	c := civilDate{y, m, d}
	switch {
	case y < 1900: // the card number's century digit starts at the 1900s
		return c, false
	case m == 0:
		return c, partial && d == 0
	case m > 12:
		return c, false
	case d == 0:
		return c, partial
	}
	last := time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return c, d <= last
}

// parseCardDate reads a CCCD date: ddMMyyyy, or with slashes (dd/MM/yyyy,
// also d/M/yyyy) in a re-shared copy.
func parseCardDate(s string, slashes, partial bool) (civilDate, bool) {
	if len(s) == 8 && isDigits(s) {
		return makeDate(atoi(s[4:]), atoi(s[2:4]), atoi(s[:2]), partial)
	}
	if !slashes {
		return civilDate{}, false
	}
	p := strings.Split(s, "/")
	if len(p) != 3 || !isDigits(p[0]) || !isDigits(p[1]) || !isDigits(p[2]) ||
		len(p[0]) > 2 || len(p[1]) > 2 || len(p[2]) != 4 {
		return civilDate{}, false
	}
	return makeDate(atoi(p[2]), atoi(p[1]), atoi(p[0]), partial)
}

// parseAppDate reads a COVID-app date: YYYY-MM-DD, with the day or the day and
// month starred in the default display mode (1990-**-**).
func parseAppDate(s string) (civilDate, bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' || !isDigits(s[:4]) {
		return civilDate{}, false
	}
	part := func(p string) (int, bool) {
		if p == "**" {
			return 0, true
		}
		if !isDigits(p) || p == "00" {
			return 0, false
		}
		return atoi(p), true
	}
	m, okM := part(s[5:7])
	d, okD := part(s[8:10])
	if !okM || !okD {
		return civilDate{}, false
	}
	return makeDate(atoi(s[:4]), m, d, true)
}

// looksAppDate is the shape test used to recognise a COVID-app code.
func looksAppDate(s string) bool {
	return len(s) >= 5 && isDigits(s[:4]) && s[4] == '-'
}
