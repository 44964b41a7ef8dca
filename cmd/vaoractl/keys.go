package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaora/vaora/sync/seal"
)

const keysUsage = `usage: vaoractl keys gen --role ROLE --out PATH
       vaoractl keys init DIR
       vaoractl keys show FILE...
       vaoractl keys open --key FILE.key [--key FILE.key...] [SEALED...]

vaora's keys (docs/keys.md says who holds which, how to deploy and how to rotate them):
  service    the hub opens an entry's display fields with it; devices hold service.pub
  authority  only the authority opens an entry's full personal fields; devices hold authority.pub
  issuer     the hub signs vaora passes; devices hold issuer.pub
  subject    the secret of the subject hash that matches people; the hub and every device hold subject.key

  gen   write a new key: PATH.key (private, mode 0600) and PATH.pub (public). A subject key has no public half: the
        secret itself is shared with the devices, so only PATH.key is written. Existing files are never replaced.
  init  write all four keys into DIR (service, authority and issuer .key and .pub; subject.key), for a new hub,
        the demo or tests. Existing files are never replaced.
  show  print each key file's role, id, creation time and public key; never the private part
  open  print the plaintext of sealed values given as arguments, or one per line on standard input. For an
        operator or the authority debugging: IT PRINTS PERSONAL DATA, so run it only where that is allowed.
`

// keysCmd is `vaoractl keys gen|init|show|open`.
func keysCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return usageError{errors.New("keys: no subcommand given (gen, init, show or open)")}
	}
	sub, args := args[0], args[1:]
	flags := flag.NewFlagSet("vaoractl keys "+sub, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	var (
		role string
		out  string
		keys []string
	)
	switch sub {
	case "gen":
		flags.StringVar(&role, "role", "", "")
		flags.StringVar(&out, "out", "", "")
	case "open":
		flags.Func("key", "", func(v string) error { keys = append(keys, v); return nil })
	case "init", "show":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	default:
		fmt.Fprint(stderr, keysUsage)
		return usageError{fmt.Errorf("keys: unknown subcommand %q (gen, init, show or open)", sub)}
	}
	// Flags may come before or after the other arguments.
	var rest []string
	for next := args; ; {
		if err := flags.Parse(next); errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, keysUsage)
			return nil
		} else if err != nil {
			fmt.Fprint(stderr, keysUsage)
			return usageError{fmt.Errorf("keys %s: %v", sub, err)}
		}
		if flags.NArg() == 0 {
			break
		}
		rest, next = append(rest, flags.Arg(0)), flags.Args()[1:]
	}

	switch sub {
	case "gen":
		if role == "" || out == "" || len(rest) > 0 {
			fmt.Fprint(stderr, keysUsage)
			return usageError{errors.New("keys gen: want --role ROLE and --out PATH, and nothing else")}
		}
		if !validRole(role) {
			return usageError{fmt.Errorf("keys gen: unknown role %q (roles: %s)", role, roleNames())}
		}
		return keysGen(seal.Role(role), out, stdout)
	case "init":
		if len(rest) != 1 {
			fmt.Fprint(stderr, keysUsage)
			return usageError{errors.New("keys init: want one directory")}
		}
		return keysInit(rest[0], stdout)
	case "show":
		if len(rest) == 0 {
			fmt.Fprint(stderr, keysUsage)
			return usageError{errors.New("keys show: no key file given")}
		}
		return keysShow(rest, stdout)
	default: // open
		if len(keys) == 0 {
			fmt.Fprint(stderr, keysUsage)
			return usageError{errors.New("keys open: no --key given (the service or authority .key file the values were sealed to)")}
		}
		ring, err := seal.LoadRing(keys...)
		if err != nil {
			return err
		}
		return keysOpen(ring, rest, stdin, stdout, stderr)
	}
}

func validRole(r string) bool {
	for _, known := range seal.Roles {
		if seal.Role(r) == known {
			return true
		}
	}
	return false
}

func roleNames() string {
	s := make([]string, len(seal.Roles))
	for i, r := range seal.Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// keyPaths are the files a key of this role is written to from a path without extension.
func keyPaths(role seal.Role, base string) (priv, pub string) {
	priv = base + ".key"
	if role != seal.RoleSubject {
		pub = base + ".pub"
	}
	return priv, pub
}

// refuseExisting fails when any of paths exists, before anything is written, so a run that stops half-way never
// leaves a new private key beside an old public one.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists: keys are never replaced by gen or init; to rotate, write the new key under another name (docs/keys.md)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeKey writes a new key's files, refusing to replace any.
func writeKey(k *seal.KeyFile, priv, pub string) error {
	if err := seal.CreateKeyFile(priv, k, true); err != nil {
		return err
	}
	if pub == "" {
		return nil
	}
	if err := seal.CreateKeyFile(pub, k, false); err != nil {
		os.Remove(priv) // a private key whose public half was never written is of no use to anyone
		return err
	}
	return nil
}

func keysGen(role seal.Role, out string, stdout io.Writer) error {
	// PATH.key would otherwise become PATH.key.key.
	base := strings.TrimSuffix(strings.TrimSuffix(out, ".key"), ".pub")
	priv, pub := keyPaths(role, base)
	if err := refuseExisting(priv, pub); err != nil {
		return err
	}
	k, err := seal.Generate(role, nil, time.Now())
	if err != nil {
		return err
	}
	if err := writeKey(k, priv, pub); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s key %s\n", role, k.ID)
	describeFiles(stdout, role, priv, pub)
	return nil
}

func describeFiles(w io.Writer, role seal.Role, priv, pub string) {
	switch role {
	case seal.RoleSubject:
		fmt.Fprintf(w, "  %s  secret, no public half: the hub and every device need this same file (mode 0600, owner vaora)\n", priv)
	case seal.RoleAuthority:
		fmt.Fprintf(w, "  %s  private: for the authority only, kept offline or on the authority view host\n", priv)
		fmt.Fprintf(w, "  %s  public: copy to every device\n", pub)
	default:
		fmt.Fprintf(w, "  %s  private: keep on the hub only\n", priv)
		fmt.Fprintf(w, "  %s  public: copy to every device\n", pub)
	}
}

func keysInit(dir string, stdout io.Writer) error {
	var paths []string
	for _, role := range seal.Roles {
		priv, pub := keyPaths(role, filepath.Join(dir, string(role)))
		paths = append(paths, priv, pub)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := refuseExisting(paths...); err != nil {
		return err
	}
	now := time.Now()
	for _, role := range seal.Roles {
		k, err := seal.Generate(role, nil, now)
		if err != nil {
			return err
		}
		priv, pub := keyPaths(role, filepath.Join(dir, string(role)))
		if err := writeKey(k, priv, pub); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s key %s\n", role, k.ID)
		describeFiles(stdout, role, priv, pub)
	}
	return nil
}

func keysShow(files []string, stdout io.Writer) error {
	for i, f := range files {
		k, err := seal.ReadKeyFile(f)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "file:    %s\nrole:    %s\nid:      %s\ncreated: %s\n", f, k.Role, k.ID, k.Created.Format(time.RFC3339))
		switch {
		case k.Role == seal.RoleSubject:
			fmt.Fprintln(stdout, "public:  none (a subject key is a shared secret)")
		default:
			fmt.Fprintf(stdout, "public:  %s\n", base64.StdEncoding.EncodeToString(k.Public))
		}
		if k.Private != nil {
			fmt.Fprintln(stdout, "private: present (not shown)")
		} else {
			fmt.Fprintln(stdout, "private: absent (a public file)")
		}
	}
	return nil
}

// keysOpen prints the plaintext of each sealed value, one per line; a value that does not open is reported on
// stderr and the rest are still tried.
func keysOpen(ring seal.Ring, values []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var failed, total int
	open := func(where, v string) {
		total++
		msg, err := ring.Open(v)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "vaoractl: keys open: %s: %v\n", where, err)
			return
		}
		fmt.Fprintf(stdout, "%s\n", msg)
	}
	if len(values) > 0 {
		for i, v := range values {
			open(fmt.Sprintf("argument %d", i+1), v)
		}
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for n := 1; sc.Scan(); n++ {
			if v := strings.TrimSpace(sc.Text()); v != "" {
				open(fmt.Sprintf("stdin:%d", n), v)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("keys open: reading standard input: %w", err)
		}
		if total == 0 {
			return usageError{errors.New("keys open: no sealed values given, as arguments or on standard input")}
		}
	}
	if failed > 0 {
		return fmt.Errorf("keys open: %d of %d values could not be opened (see above)", failed, total)
	}
	return nil
}
