package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

const (
	// maxFileBytes caps what is read and parsed: a real config is a few kilobytes.
	maxFileBytes = 1 << 20
	// maxItems caps lines plus flow items before parsing, because yaml.Node costs about 120 bytes per item and a
	// 1 MiB file of "[a,a,a,..." would otherwise take over 100 MB on a Raspberry Pi.
	maxItems = 10000
)

// Error is a configuration error. Its text is "file:line: key: message", leaving out the parts that are unknown:
// Validate has no file or line, a syntax error has no key, a missing key has no line.
type Error struct {
	File string // file name as given to Load* or Parse*; "" from Validate
	Line int    // 1-based line of the key in the file; 0 if unknown
	Key  string // dotted key path such as "uplink.batch_max" or "inputs[1]"; "" for file-level errors
	Msg  string // what was wrong and what to write instead
	Err  error  // underlying cause, e.g. fs.ErrNotExist from Load*; usually nil
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// in places a Validate error in file name, at the line where its key was read (if it was).
func (e *Error) in(name string, lines map[string]int) *Error {
	e.File = name
	e.Line = lines[e.Key]
	return e
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot open: " + cause(err), Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read: " + cause(err), Err: err}
	}
	return data, nil
}

// cause drops the path that *fs.PathError repeats, since our messages start with it already.
func cause(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// decode parses data as one YAML mapping and stores it into dst (a struct holding the defaults), key by key against
// the yaml tags. It returns the line of every key path it set.
func decode(name string, data []byte, dst reflect.Value) (map[string]int, error) {
	if len(data) > maxFileBytes {
		return nil, &Error{File: name, Msg: "file is larger than 1 MiB; a vaora config is a few kilobytes (is this the right file?)"}
	}
	if e := checkText(data); e != nil {
		e.File = name
		return nil, e
	}
	root, err := parseYAML(name, data)
	if err != nil {
		return nil, err
	}
	w := &walker{file: name, lines: map[string]int{}}
	if root == nil {
		return w.lines, nil // empty file: all defaults
	}
	if err := w.mapping(root, dst, ""); err != nil {
		return nil, err
	}
	return w.lines, nil
}

// checkText rejects what YAML would reject with a message lacking a line (bad UTF-8, control characters), and files
// with so many lines or items that the node tree would be large.
func checkText(data []byte) *Error {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return &Error{Line: 1, Msg: "file is UTF-16 text; save it as UTF-8"}
	}
	line, items := 1, 0
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return &Error{Line: line, Msg: "file is not valid UTF-8 text; save it as UTF-8"}
		case r == '\n', r == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			items++
			if items <= maxItems {
				line++
			}
		case r == ',' || r == '[' || r == '{':
			items++
		case r == '\t', r == '\r':
		case r == 0xFEFF && i == 0: // byte order mark
		case r < 0x20 || r >= 0x7F && r <= 0x9F || r == 0xFEFF || r == 0xFFFE || r == 0xFFFF || r == 0x2028 || r == 0x2029:
			return &Error{Line: line, Msg: fmt.Sprintf("character U+%04X is not allowed in a config file; remove it", r)}
		}
		if items > maxItems {
			return &Error{Line: line, Msg: fmt.Sprintf("more than %d lines or list items; a vaora config is a few dozen lines (is this the right file?)", maxItems)}
		}
		i += size
	}
	return nil
}

// parseYAML returns the root node of the only document in data, or nil if the file holds no value.
func parseYAML(name string, data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library is third-party code on operator input; a bug there must not crash the daemon.
		if r := recover(); r != nil {
			root, err = nil, &Error{File: name, Msg: fmt.Sprintf("cannot parse as YAML (parser failure: %v)", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, nil // nothing but comments and blank lines
		}
		return nil, syntaxError(name, data, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, syntaxError(name, data, err)
	default:
		return nil, &Error{File: name, Line: next.Line, Msg: "a second YAML document starts here; a config file holds one (remove this --- and what follows)"}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	return root, nil
}

// syntaxError turns a yaml error ("yaml: line 3: msg") into ours, correcting its line: the library reports parser
// errors 0-based and drops the line altogether when it is the first.
func syntaxError(name string, data []byte, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, m, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, m
			}
		}
	}
	if strings.HasPrefix(msg, "did not find expected") || strings.HasPrefix(msg, "found duplicate %") ||
		msg == "found incompatible YAML document" || msg == "found undefined tag handle" {
		line++
	}
	last := lineAt(data, len(data))
	if len(data) > 0 && (data[len(data)-1] == '\n' || data[len(data)-1] == '\r') {
		last-- // a final line break does not start a line
	}
	line = max(1, min(line, last)) // "end of stream" lands past the last line
	if anchor, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		anchor = strings.TrimSuffix(anchor, "' referenced")
		line = 0
		if i := bytes.Index(data, []byte("*"+anchor)); i >= 0 {
			line = lineAt(data, i)
		}
		return &Error{File: name, Line: line, Msg: fmt.Sprintf("alias *%s refers to no anchor; vaora configs do not use anchors or aliases, write the value out", clip(anchor))}
	}
	// A tab in the indentation shows up as one of these two messages. "found a tab character ..." is reported at the
	// start of the construct being scanned, which may be lines above the tab.
	if tab, token := strings.Contains(msg, "tab character"), strings.Contains(msg, "cannot start any token"); tab || token {
		text := bytes.Split(bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n")), []byte("\n"))
		for l := line; l == line || tab && l <= line+100; l++ {
			if hasIndentTab(text, l) {
				return &Error{File: name, Line: l, Msg: "tab used for indentation; indent with spaces (YAML does not allow tabs there)"}
			}
		}
	}
	for _, h := range syntaxHints {
		if strings.HasPrefix(msg, h[0]) {
			msg += " (" + h[1] + ")"
			break
		}
	}
	return &Error{File: name, Line: line, Msg: "YAML syntax error: " + msg}
}

var syntaxHints = [][2]string{
	{"mapping values are not allowed", `check the indentation; put a value that contains ": " in quotes`},
	{"did not find expected key", "check the indentation of this line and the one above"},
	{"could not find expected ':'", "write key: value, with a space after the colon"},
	{"found character that cannot start any token", "put a value that starts with @, ` or % in quotes"},
	{"found unexpected end of stream", "a quote or bracket opened here is never closed"},
	{"did not find expected ',' or", "a bracket opened here is never closed, or items lack a comma between them"},
	{"found incompatible YAML document", "remove the %YAML line"},
}

// lineAt returns the 1-based line of byte offset off, counting line breaks as checkText does.
func lineAt(data []byte, off int) int {
	line := 1
	for i, c := range data[:off] {
		if c == '\n' || c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			line++
		}
	}
	return line
}

// hasIndentTab reports whether the given 1-based line starts with whitespace containing a tab.
func hasIndentTab(lines [][]byte, line int) bool {
	if line < 1 || line > len(lines) {
		return false
	}
	l := lines[line-1]
	indent := l[:len(l)-len(bytes.TrimLeft(l, " \t"))]
	return bytes.IndexByte(indent, '\t') >= 0
}

// walker stores a yaml.Node tree into Go values, checking every key against the yaml tags.
type walker struct {
	file  string
	lines map[string]int // key path -> line of the key
}

func (w *walker) errorf(line int, key, format string, args ...any) error {
	return &Error{File: w.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

type field struct {
	name  string
	index int
}

func fields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fs = append(fs, field{name, i})
		}
	}
	return fs
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// mapping stores mapping node n into struct v. A null value (a key with nothing under it, e.g. all of its lines
// commented out) leaves every field at its default.
func (w *walker) mapping(n *yaml.Node, v reflect.Value, path string) error {
	fs := fields(v.Type())
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	switch {
	case n.Kind == yaml.AliasNode:
		return w.aliasError(n, path)
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return nil
	case n.Kind != yaml.MappingNode:
		what := "keys"
		if path == "" {
			what = "key: value lines at the top level"
		}
		return w.errorf(n.Line, path, "expected %s (%s: ...), found %s", what, names[0], describe(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			return w.aliasError(k, path)
		}
		if k.Kind != yaml.ScalarNode {
			return w.errorf(k.Line, path, "found %s used as a key; keys are plain names such as %s", describe(k), names[0])
		}
		key := joinPath(path, keyName(k.Value))
		if k.ShortTag() == "!!merge" {
			return w.errorf(k.Line, key, "merge keys (<<) are not supported; write the keys out")
		}
		if first, dup := seen[k.Value]; dup {
			return w.errorf(k.Line, key, "duplicate key (first set on line %d); keep only one", first)
		}
		seen[k.Value] = k.Line
		j := slices.Index(names, k.Value)
		if j < 0 {
			hint := ""
			if s := suggest(k.Value, names); s != "" {
				hint = "did you mean " + s + "? "
			}
			return w.errorf(k.Line, key, "unknown key (%sknown keys: %s)", hint, strings.Join(names, ", "))
		}
		w.lines[key] = k.Line
		if err := w.value(val, v.Field(fs[j].index), key, k.Line); err != nil {
			return err
		}
	}
	return nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// value stores n into v; line is that of the key, which errors about a single value cite.
func (w *walker) value(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind == yaml.AliasNode {
		return w.aliasError(n, path)
	}
	switch {
	case v.Kind() == reflect.Struct:
		return w.mapping(n, v, path)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		return w.stringList(n, v, path, line)
	case v.Type() == durationType:
		s, err := w.scalar(n, v, path, line, "a duration, e.g. 5s or 500ms")
		if err != nil {
			return err
		}
		if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			return w.errorf(line, path, "%s has no unit (write e.g. 5s or 500ms)", clip(s))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return w.errorf(line, path, "%s is not a duration (write e.g. 5s or 500ms)", quote(s))
		}
		v.SetInt(int64(d))
		return nil
	case v.Type() == sizeType:
		s, err := w.scalar(n, v, path, line, "a size, e.g. 256MiB")
		if err != nil {
			return err
		}
		if n.ShortTag() == "!!int" { // plain bytes, in any form YAML reads as a whole number (1_048_576, 0x100000)
			var i int64
			if n.Decode(&i) != nil {
				return w.errorf(line, path, "%s is out of range%s", clip(s), sizeHint(path))
			}
			s = strconv.FormatInt(i, 10)
		}
		sz, msg := parseSize(s)
		if strings.HasSuffix(msg, "out of range") {
			msg += sizeHint(path)
		}
		if msg != "" {
			return w.errorf(line, path, "%s", msg)
		}
		v.SetInt(int64(sz))
		return nil
	case v.Kind() == reflect.Int:
		s, err := w.scalar(n, v, path, line, "a whole number")
		if err != nil {
			return err
		}
		switch n.ShortTag() {
		case "!!int":
			var i int64
			if n.Decode(&i) != nil || int64(int(i)) != i {
				if strings.Trim(s, "+-0123456789_") != "" && n.Decode(&i) != nil {
					return w.errorf(line, path, "%s is not a whole number (write e.g. %d)", quote(s), v.Int()) // !!int abc
				}
				return w.errorf(line, path, "%s is out of range%s", clip(s), rangeHint(path))
			}
			v.SetInt(i)
			return nil
		case "!!str":
			if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				return w.errorf(line, path, "%s is text; write the number without quotes", quote(s))
			}
			return w.errorf(line, path, "%s is not a whole number (write e.g. %d)", quote(s), v.Int())
		default:
			if n.ShortTag() == "!!float" && strings.Trim(s, "+-0123456789_") == "" {
				return w.errorf(line, path, "%s is out of range%s", clip(s), rangeHint(path)) // too big for !!int
			}
			return w.errorf(line, path, "%s is not a whole number (write e.g. %d)", clip(s), v.Int())
		}
	case v.Kind() == reflect.String:
		s, err := w.scalar(n, v, path, line, "a single value")
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	}
	panic("configs: field " + path + " has unsupported type " + v.Type().String())
}

// parseSize reads a size; the message says what is wrong with it and what to write.
func parseSize(s string) (Size, string) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimPrefix(t[i:], " ")
	}
	const write = "write e.g. 256MiB, 1GiB or a number of bytes"
	if num == "" {
		return 0, fmt.Sprintf("%s is not a size (%s)", quote(s), write)
	}
	mult := Size(1)
	if unit != "" {
		mult = 0
		for _, u := range sizeUnits {
			if unit == u.name {
				mult = u.size
			}
		}
	}
	switch lower := strings.ToLower(unit); {
	case mult != 0:
	case strings.HasPrefix(lower, ".") || strings.HasPrefix(lower, ","):
		return 0, fmt.Sprintf("%s is not a whole number of bytes or units; write it in a smaller unit, e.g. 1536MiB for 1.5GiB", quote(s))
	case slices.Contains([]string{"b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", "t", "tb", "tib"}, lower):
		return 0, fmt.Sprintf("%s: write the unit as KiB, MiB, GiB or TiB (binary units: 1MiB = 1048576 bytes), e.g. 256MiB, or a number of bytes", quote(s))
	default:
		return 0, fmt.Sprintf("%s is not a size (%s)", quote(s), write)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > int64(math.MaxInt64/mult) {
		return 0, fmt.Sprintf("%s is out of range", clip(s))
	}
	return Size(n) * mult, ""
}

func sizeHint(path string) string {
	if r, ok := sizeRanges[path]; ok {
		return fmt.Sprintf(" (allowed %s to %s)", r[0], r[1])
	}
	return ""
}

// scalar returns the text of a plain value, rejecting lists, mappings, nulls and tags other than YAML's core ones.
// Numbers and booleans are returned as written, so device_id: 42 means "42".
func (w *walker) scalar(n *yaml.Node, v reflect.Value, path string, line int, want string) (string, error) {
	if n.Kind == yaml.AliasNode {
		return "", w.aliasError(n, path)
	}
	if n.Kind != yaml.ScalarNode {
		return "", w.errorf(line, path, "expected %s, found %s", want, describe(n))
	}
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return "", w.errorf(line, path, "no value; %s", nullHint(v))
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return n.Value, nil
	default:
		return "", w.errorf(line, path, "the tag %s is not supported; write a plain value", clip(tag))
	}
}

func (w *walker) stringList(n *yaml.Node, v reflect.Value, path string, line int) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return w.errorf(line, path, "no value; %s", nullHint(v))
	case n.Kind != yaml.SequenceNode:
		return w.errorf(line, path, "expected a list, found %s; write it as [%s] or as lines starting with \"- \"", describe(n), clip(n.Value))
	}
	list := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		key := fmt.Sprintf("%s[%d]", path, i)
		w.lines[key] = item.Line
		if item.Kind == yaml.ScalarNode && item.ShortTag() == "!!null" {
			return w.errorf(item.Line, key, "empty list item; remove it or write a value")
		}
		s, err := w.scalar(item, reflect.ValueOf(""), key, item.Line, "a single value")
		if err != nil {
			return err
		}
		list = append(list, s)
	}
	v.Set(reflect.ValueOf(list))
	return nil
}

func (w *walker) aliasError(n *yaml.Node, path string) error {
	return w.errorf(n.Line, path, "alias *%s: vaora configs do not use anchors or aliases; write the value out", clip(n.Value))
}

// describe names what a node is, for "expected X, found Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "keys (key: value)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "no value"
		}
		return "the single value " + quote(n.Value)
	}
	return "a YAML document"
}

// nullHint says what to do about key: with nothing after it; v holds the default.
func nullHint(v reflect.Value) string {
	if v.IsZero() {
		return "write a value after the colon"
	}
	var def string
	switch {
	case v.Type() == durationType:
		def = time.Duration(v.Int()).String()
	case v.Kind() == reflect.Slice:
		def = fmt.Sprintf("[%s]", strings.Join(v.Interface().([]string), ", "))
	case v.Kind() == reflect.String:
		def = strconv.Quote(v.String())
	default:
		def = fmt.Sprint(v.Interface())
	}
	return "write a value after the colon, or delete the line to use the default " + def
}

// keyName is how a key appears in a key path: as written if it is a plain name, quoted otherwise.
func keyName(k string) string {
	if k == "" || strings.ContainsFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) || len(k) > 64 {
		return quote(k)
	}
	return k
}

// quote quotes s for a message, clipped so that a pasted blob does not flood the journal.
func quote(s string) string { return strconv.Quote(clip(s)) }

func clip(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}

// suggest returns the known key closest to an unknown one, if it is close enough to be a typo.
func suggest(key string, known []string) string {
	if len(key) > 64 {
		return ""
	}
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
