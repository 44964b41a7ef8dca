package main

import (
	"fmt"
	"regexp"
	"strings"
)

// A Debian upstream version without a revision: starts with a digit; letters, digits and . + ~ only (a hyphen would
// start a Debian revision).
var debianVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// describeTag matches `git describe --tags` output on a tag: v1.2.3, v1.2.3-4-gabc1234, each maybe -dirty.
var describeTag = regexp.MustCompile(`^v?([0-9][A-Za-z0-9.~]*?)(?:-([0-9]+)-(g[0-9a-f]+))?(-dirty)?$`)

// describeBare matches `git describe --always` output with no tag in reach: a commit id, maybe -dirty.
var describeBare = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)

// debVersion turns a version or `git describe --tags --always --dirty` output into a Debian version that sorts the
// way the commits do: v1.2.3 → 1.2.3, v1.2.3-4-gabc1234 → 1.2.3+4.gabc1234 (after 1.2.3), a bare commit id
// 6a8a69a → 0.0.0+git6a8a69a, and -dirty → .dirty.
func debVersion(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("-version is empty: pass a version such as 1.2.0, or make deb's VERSION (git describe --tags --always --dirty)")
	}
	var v string
	// git abbreviates commit ids to 7 hex digits or more; a version has dots.
	if m := describeBare.FindStringSubmatch(s); m != nil && len(m[1]) >= 7 {
		v = "0.0.0+git" + m[1]
		if m[2] != "" {
			v += ".dirty"
		}
	} else if m := describeTag.FindStringSubmatch(s); m != nil {
		v = m[1]
		sep := "+"
		if strings.Contains(v, "+") {
			sep = "."
		}
		if m[2] != "" {
			v += sep + m[2] + "." + m[3]
			sep = "."
		}
		if m[4] != "" {
			v += sep + "dirty"
		}
	} else {
		v = s
	}
	if !debianVersion.MatchString(v) {
		return "", fmt.Errorf("-version %q: not a Debian version (start with a digit; then letters, digits, '.', '+' or '~'), nor git describe output such as v1.2.3-4-gabc1234-dirty", s)
	}
	return v, nil
}
