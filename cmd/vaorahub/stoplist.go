package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

const stoplistUsage = `usage:
  vaorahub stoplist add    --site SITE (--subject HEX32 | --id NUMBER --kind cccd|bhyt|covid_app) --reason CODE
  vaorahub stoplist remove --site SITE (--subject HEX32 | --id NUMBER --kind cccd|bhyt|covid_app)
  vaorahub stoplist import --site SITE --reason CODE FILE   (subject keys, one per line; - reads stdin)
  vaorahub stoplist list   --site SITE
common flags: --config FILE, --db URL, --keys DIR (subject.key, for --id)
The running hub publishes each change to the site's devices within a second.`

// hubFlags are the flags every offline subcommand shares: where the database and keys are.
type hubFlags struct {
	config, db, keys *string
}

func addHubFlags(fs *flag.FlagSet) hubFlags {
	return hubFlags{
		config: fs.String("config", "", "hub config file (YAML; see configs/vaorahub.example.yaml)"),
		db:     fs.String("db", "", "database: sqlite:PATH or postgres://... (default: the config's)"),
		keys:   fs.String("keys", "", "directory of the hub's keys (default: the config's)"),
	}
}

// resolve loads the hub config and applies the flags set.
func (h hubFlags) resolve(fs *flag.FlagSet) (configs.Hub, error) {
	cfg := configs.DefaultHub()
	if *h.config != "" {
		var err error
		if cfg, err = configs.LoadHub(*h.config); err != nil {
			return cfg, usageError{err}
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	override(&cfg.DB, *h.db, set["db"])
	override(&cfg.Keys, *h.keys, set["keys"])
	return cfg, nil
}

// stoplistCmd is `vaorahub stoplist ...`: it changes the database; the running hub publishes the change.
func stoplistCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, stoplistUsage)
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("vaorahub stoplist "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	hf := addHubFlags(fs)
	site := fs.String("site", "default", "the site whose list to change")
	subj := fs.String("subject", "", "subject key, 32 hex digits (as entries and the hub show it)")
	id := fs.String("id", "", "an ID number, hashed here with subject.key as devices hash it")
	kind := fs.String("kind", "", "what --id is: cccd, bhyt or covid_app")
	reason := fs.String("reason", "", "reason code shown at the gate: lower-case letters, digits, _ (e.g. banned, covid_positive)")
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if !wire.SitePattern.MatchString(*site) {
		return usageError{fmt.Errorf("--site %q: want %s (the site: setting of the devices)", *site, wire.SitePattern)}
	}
	cfg, err := hf.resolve(fs)
	if err != nil {
		return err
	}
	switch sub {
	case "add", "remove", "list", "import":
	default:
		return usageError{fmt.Errorf("stoplist %q: want add, remove, import or list\n%s", sub, stoplistUsage)}
	}
	if sub == "add" || sub == "import" {
		if msg := checkReason(*reason); msg != "" {
			return usageError{fmt.Errorf("--reason: %s", msg)}
		}
	}
	var keys []string
	switch sub {
	case "add", "remove":
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
		}
		k, err := subjectArg(*subj, *id, *kind, filepath.Join(cfg.Keys, "subject.key"))
		if err != nil {
			return err
		}
		keys = []string{k}
	case "import":
		if fs.NArg() != 1 {
			return usageError{errors.New("stoplist import: name one FILE of subject keys, one per line (- for stdin)")}
		}
		if keys, err = readKeys(fs.Arg(0)); err != nil {
			return err
		}
	}

	db, err := store.Open(ctx, cfg.DB, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "list" {
		rows, ver, err := db.StopList(ctx, *site, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "site %s: version %d, %d keys\n", *site, ver.Version, len(rows))
		for _, r := range rows {
			fmt.Fprintf(stdout, "%s %s version=%d changed=%s\n", r.Subject, r.Reason, r.Version,
				r.ChangedAt.Format(time.RFC3339))
		}
		return nil
	}
	var add []store.StopEntry
	var remove []string
	if sub == "remove" {
		remove = keys
	} else {
		for _, k := range keys {
			add = append(add, store.StopEntry{Subject: k, Reason: *reason})
		}
	}
	v, n, err := db.ChangeStopList(ctx, *site, add, remove)
	if err != nil {
		return err
	}
	switch {
	case n == 0 && sub == "remove":
		fmt.Fprintf(stdout, "site %s: not on the list; nothing changed (version %d)\n", *site, v)
	case n == 0:
		fmt.Fprintf(stdout, "site %s: already listed with that reason; nothing changed (version %d)\n", *site, v)
	default:
		fmt.Fprintf(stdout, "site %s: %d changed; list version %d (the running hub publishes it to the site's devices)\n",
			*site, n, v)
	}
	return nil
}

// subjectArg is the subject key named by --subject, or computed from --id and --kind as devices compute it.
func subjectArg(subj, id, kind, keyFile string) (string, error) {
	switch {
	case subj != "" && id != "":
		return "", usageError{errors.New("give --subject or --id, not both")}
	case subj != "":
		k, err := subject.ParseKey(strings.ToLower(strings.TrimSpace(subj)))
		if err != nil {
			return "", usageError{fmt.Errorf("--subject: %v", err)}
		}
		return k.String(), nil
	case id != "":
		return subjectOf(id, kind, keyFile)
	}
	return "", usageError{errors.New("name the person: --subject HEX32, or --id NUMBER --kind cccd|bhyt|covid_app")}
}

// subjectOf computes a subject key as a device does (and as vaoractl pass issue does): the keyed hash of the
// normalised identifier.
func subjectOf(id, kind, keyFile string) (string, error) {
	id = strings.TrimSpace(id)
	switch kind {
	case "cccd":
		if len(id) != 12 || strings.Trim(id, "0123456789") != "" {
			return "", usageError{errors.New("--id: a CCCD number is 12 digits")}
		}
	case "covid_app":
		if id == "" || strings.Trim(id, "0123456789") != "" {
			return "", usageError{errors.New("--id: the app's QID is digits only")}
		}
	case "bhyt":
		id = strings.ToUpper(id)
		if len(id) != 10 && len(id) != 15 || strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return "", usageError{errors.New("--id: a health insurance card number is 10 digits, or 2 letters and 13 digits")}
		}
	default:
		return "", usageError{fmt.Errorf("--kind %q: want cccd, bhyt or covid_app (what the --id number is)", kind)}
	}
	k, err := seal.ReadKeyFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("--id needs the subject key the devices hash with: %w (set --keys to the hub's keys "+
			"directory)", err)
	}
	if k.Role != seal.RoleSubject {
		return "", fmt.Errorf("%s holds the %s key, not the subject key", keyFile, k.Role)
	}
	h, err := subject.New(k.Private, subject.V1)
	if err != nil {
		return "", fmt.Errorf("%s: %v", keyFile, err)
	}
	return h.Key(kind, id).String(), nil
}

// readKeys reads subject keys, one per line; blank lines and # comments are skipped.
func readKeys(name string) ([]string, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError{fmt.Errorf("stoplist import: %v", err)}
		}
		defer f.Close()
		r = f
	}
	var keys []string
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.ToLower(strings.TrimSpace(sc.Text()))
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := subject.ParseKey(s)
		if err != nil {
			// The line is not echoed: it may be an ID number pasted by mistake.
			return nil, usageError{fmt.Errorf("stoplist import: %s:%d: not a subject key (32 hex digits); hash ID "+
				"numbers with stoplist add --id, or with the tool that made the file", name, line)}
		}
		keys = append(keys, k.String())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("stoplist import: %s: %v", name, err)
	}
	return keys, nil
}

// checkReason: reason codes are stable snake_case words, as the gate's own reason codes are (scanner/stoplist).
func checkReason(s string) string {
	if s == "" || len(s) > 64 {
		return fmt.Sprintf("reason code %q: want 1 to 64 characters, e.g. banned or covid_positive", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return fmt.Sprintf("reason code %q: use lower-case letters, digits and _ only", s)
		}
	}
	return ""
}
