package store

import (
	"net/url"
	"strings"
)

// Redact returns a database URL fit for a log line or an error: a password, in the user info or in a password=
// parameter (pgx reads both), is replaced.
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		if !strings.Contains(dbURL, "@") && !strings.Contains(strings.ToLower(dbURL), "password") {
			return dbURL
		}
		// An unparsable URL may still hold a password: show only its scheme.
		scheme, _, _ := strings.Cut(dbURL, ":")
		return scheme + ":(unparsable URL hidden: it may hold a password)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
