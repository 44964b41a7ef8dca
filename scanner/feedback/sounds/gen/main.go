// Command gen writes the tones vaorad plays for each state (scanner/feedback/sounds/*.wav): 16-bit mono PCM at
// 16 kHz, short and small, so they embed in the binary. Run by go generate in scanner/feedback; the files it writes
// are committed, and a test checks they are what this program makes.
//
//	green  a rising two-note chime (G5 then C6)
//	amber  one mid tone (660 Hz)
//	blue   two short beeps (1.2 kHz)
//	red    a low, long buzz (160 Hz, odd harmonics)
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

const rate = 16000

// note is a tone of freq Hz for dur seconds; harmonics adds odd overtones (a buzz); decay > 0 makes it ring out.
type note struct {
	freq, dur, gap float64
	harmonics      int
	decay          float64
	level          float64
}

var tones = map[string][]note{
	"green": {{freq: 784, dur: 0.13, decay: 6, level: 0.5}, {freq: 1047, dur: 0.25, decay: 5, level: 0.5}},
	"amber": {{freq: 660, dur: 0.30, level: 0.45}},
	"blue":  {{freq: 1200, dur: 0.08, gap: 0.08, level: 0.4}, {freq: 1200, dur: 0.08, level: 0.4}},
	"red":   {{freq: 160, dur: 0.70, harmonics: 9, level: 0.45}},
}

func main() {
	out := flag.String("o", "sounds", "directory to write the WAV files into")
	flag.Parse()
	for name, notes := range tones {
		path := filepath.Join(*out, name+".wav")
		if err := os.WriteFile(path, wav(synth(notes)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func synth(notes []note) []int16 {
	var pcm []int16
	for _, n := range notes {
		samples := int(n.dur * rate)
		fade := rate / 200 // 5 ms in and out: no clicks
		for i := range samples {
			t := float64(i) / rate
			v := math.Sin(2 * math.Pi * n.freq * t)
			for h := 3; h <= n.harmonics; h += 2 { // a band-limited square: odd harmonics at 1/h
				if n.freq*float64(h) < rate/2 {
					v += math.Sin(2*math.Pi*n.freq*float64(h)*t) / float64(h)
				}
			}
			if n.harmonics > 0 {
				v *= 0.7
			}
			env := 1.0
			if n.decay > 0 {
				env = math.Exp(-n.decay * t)
			}
			env *= min(1, float64(i)/float64(fade), float64(samples-1-i)/float64(fade))
			pcm = append(pcm, int16(math.Round(v*env*n.level*math.MaxInt16)))
		}
		pcm = append(pcm, make([]int16, int(n.gap*rate))...)
	}
	return pcm
}

// wav wraps PCM in a canonical 44-byte RIFF/WAVE header.
func wav(pcm []int16) []byte {
	data := 2 * len(pcm)
	b := make([]byte, 0, 44+data)
	le := binary.LittleEndian
	b = append(b, "RIFF"...)
	b = le.AppendUint32(b, uint32(36+data))
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, 16)     // fmt chunk size
	b = le.AppendUint16(b, 1)      // PCM
	b = le.AppendUint16(b, 1)      // mono
	b = le.AppendUint32(b, rate)   // sample rate
	b = le.AppendUint32(b, rate*2) // byte rate
	b = le.AppendUint16(b, 2)      // block align
	b = le.AppendUint16(b, 16)     // bits per sample
	b = append(b, "data"...)
	b = le.AppendUint32(b, uint32(data))
	for _, s := range pcm {
		b = le.AppendUint16(b, uint16(s))
	}
	return b
}
