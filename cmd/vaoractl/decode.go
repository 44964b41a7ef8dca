package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/vaora/vaora/scanner/qr"
)

const decodeUsage = `usage: vaoractl decode [--json] FILE...

Reads the QR codes in PNG, JPEG or WebP images with the device's decoder, the files in parallel.
Prints one line per file, in argument order: FILE<TAB>TEXT<TAB>MS, TEXT Go-quoted ("" when no code was read;
the first code when there are several). With --json, one object per line: {"file","texts":[...],"ms","error"}.
Exits 1 if a file could not be read.
`

type decodeOutcome struct {
	File  string   `json:"file"`
	Texts []string `json:"texts"`
	MS    float64  `json:"ms"`
	Error string   `json:"error,omitempty"`
}

func decodeCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaoractl decode", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "")
	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, decodeUsage)
			return nil
		} else if err != nil {
			fmt.Fprint(stderr, decodeUsage)
			return usageError{fmt.Errorf("decode: %v", err)}
		}
		if fs.NArg() == 0 {
			break
		}
		files, rest = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if len(files) == 0 {
		fmt.Fprint(stderr, decodeUsage)
		return usageError{errors.New("decode: no image files given")}
	}

	// A short batch whose garbage is a few pictures at a time: collecting less often saves a tenth of the CPU.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	out := make([]decodeOutcome, len(files))
	done := make([]chan struct{}, len(files))
	for i := range done {
		done[i] = make(chan struct{})
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				out[i] = decodeFile(files[i])
				close(done[i])
			}
		})
	}
	go func() {
		for i := range files {
			next <- i
		}
		close(next)
	}()

	failed := 0
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	// Print each result as soon as it and all before it are ready.
	for i := range files {
		<-done[i]
		o := out[i]
		if o.Error != "" {
			failed++
		}
		if *asJSON {
			if err := enc.Encode(o); err != nil {
				return err
			}
			continue
		}
		if o.Error != "" {
			fmt.Fprintf(stderr, "vaoractl decode: %s: %s\n", o.File, o.Error)
		}
		text := ""
		if len(o.Texts) > 0 {
			text = o.Texts[0]
		}
		fmt.Fprintf(stdout, "%s\t%s\t%.1f\n", o.File, strconv.Quote(text), o.MS)
	}
	wg.Wait()
	if failed > 0 {
		return fmt.Errorf("decode: %d of %d files could not be read", failed, len(files))
	}
	return nil
}

// decodeFile times the image decode and the QR decode together: what a user waits for per file.
func decodeFile(name string) (o decodeOutcome) {
	o = decodeOutcome{File: name, Texts: []string{}}
	start := time.Now()
	defer func() { o.MS = float64(time.Since(start).Microseconds()) / 1000 }()
	data, err := os.ReadFile(name)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	res, err := qr.DecodeFile(context.Background(), data)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	for _, r := range res {
		o.Texts = append(o.Texts, r.Text)
	}
	return o
}
