package qr

import (
	"context"
	"math"
	"sort"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/detector"
)

// This file is vaora's own detection stage, built on gozxing's lower-level parts (the finder-pattern cross checks,
// the perspective sampler and the decoder). gozxing's detectors pick finder-pattern triples by trying every triple
// of candidates, which is cubic in the candidates: a textured frame (printed text, tiles, a phone's moiré) yields
// hundreds and stalls the reader for seconds. Here the candidates are capped, only the best-confirmed take part in
// the search, and several triples are tried in order of how square they are, not only the best one, so a false
// candidate near a real code does not hide it.

const (
	maxCandidates = 80 // a frame with more is a decoy storm: the row scan stops there
	maxSelect     = 24 // the best-confirmed candidates that take part in the triple search (2,024 triples at most)
	maxTriples    = 8  // triples sampled and decoded per bitmap
)

// found is one code read by detectCodes.
type found struct{ text string }

// finderCandidates scans the bitmap's rows for the 1:1:3:1:1 run ratio of a finder pattern and keeps those that
// pass gozxing's vertical, horizontal and diagonal cross checks. It stops at maxCandidates.
func finderCandidates(ctx context.Context, bm *gozxing.BitMatrix) []*detector.FinderPattern {
	f := detector.NewFinderPatternFinder(bm, nil)
	maxI, maxJ := bm.GetHeight(), bm.GetWidth()
	skip := 2
	if maxI < 300 {
		skip = 1 // small images: every row counts
	}
	stateCount := make([]int, 5)
	row := gozxing.NewBitArray(maxJ)
	for i := skip - 1; i < maxI; i += skip {
		if i%64 == 0 && ctx.Err() != nil {
			break
		}
		if len(f.GetPossibleCenters()) >= maxCandidates {
			break
		}
		clear(stateCount)
		state := 0
		row = bm.GetRow(i, row)
		bits := row.GetBitArray()
		for j := 0; j < maxJ; j++ {
			if bits[j>>5]&(1<<(j&31)) != 0 {
				if state&1 == 1 {
					state++
				}
				stateCount[state]++
				continue
			}
			if state&1 == 1 {
				stateCount[state]++
				continue
			}
			if state != 4 {
				state++
				stateCount[state]++
				continue
			}
			if len(f.GetPossibleCenters()) >= maxCandidates {
				break
			}
			if detector.FinderPatternFinder_foundPatternCross(stateCount) && f.HandlePossibleCenter(stateCount, i, j) {
				state = 0
				clear(stateCount)
				continue
			}
			// Not a pattern: keep the last black-white pair as the start of the next try.
			stateCount[0], stateCount[1], stateCount[2], stateCount[3], stateCount[4] = stateCount[2], stateCount[3], stateCount[4], 1, 0
			state = 3
		}
		if len(f.GetPossibleCenters()) < maxCandidates && detector.FinderPatternFinder_foundPatternCross(stateCount) {
			f.HandlePossibleCenter(stateCount, i, maxJ)
		}
	}
	return f.GetPossibleCenters()
}

type triple struct {
	bl, tl, tr *detector.FinderPattern
	score      float64
}

// bestTriples orders candidate triples by how close they come to an isosceles right triangle of similar finder
// patterns, a plausible number of modules apart.
func bestTriples(cands []*detector.FinderPattern) []triple {
	if len(cands) < 3 {
		return nil
	}
	// A real finder pattern is crossed by several scanned rows; one seen once is usually noise or texture.
	var c []*detector.FinderPattern
	for _, p := range cands {
		if p.GetCount() >= 2 {
			c = append(c, p)
		}
	}
	sort.SliceStable(c, func(i, j int) bool { return c[i].GetCount() > c[j].GetCount() })
	if len(c) > maxSelect {
		c = c[:maxSelect]
	}
	var out []triple
	for i := 0; i < len(c)-2; i++ {
		for j := i + 1; j < len(c)-1; j++ {
			for k := j + 1; k < len(c); k++ {
				a, b, d := c[i], c[j], c[k]
				lo := math.Min(a.GetEstimatedModuleSize(), math.Min(b.GetEstimatedModuleSize(), d.GetEstimatedModuleSize()))
				hi := math.Max(a.GetEstimatedModuleSize(), math.Max(b.GetEstimatedModuleSize(), d.GetEstimatedModuleSize()))
				if hi > lo*1.5 {
					continue
				}
				p0, p1, p2 := gozxing.ResultPoint_OrderBestPatterns(a, b, d)
				bl, tl, tr := p0.(*detector.FinderPattern), p1.(*detector.FinderPattern), p2.(*detector.FinderPattern)
				dA := gozxing.ResultPoint_Distance(tl, bl)
				dB := gozxing.ResultPoint_Distance(tl, tr)
				dC := gozxing.ResultPoint_Distance(bl, tr)
				mod := (a.GetEstimatedModuleSize() + b.GetEstimatedModuleSize() + d.GetEstimatedModuleSize()) / 3
				// Finder centres are dimension-7 modules apart: versions 1 to 40 span 14 to 170.
				if n := (dA + dB) / (2 * mod); n < 10 || n > 180 {
					continue
				}
				sides := math.Abs(dA-dB) / math.Min(dA, dB)
				right := math.Abs(dC-math.Hypot(dA, dB)) / dC
				if sides > 0.5 || right > 0.35 {
					continue
				}
				out = append(out, triple{bl, tl, tr, sides + right + (hi/lo - 1)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].score < out[j].score })
	return out
}

// detectCodes reads every code it can from one bitmap: triples in order of quality, each sampled as gozxing's
// detector does (with the alignment pattern) and, if that fails, without it and with the neighbouring versions'
// sizes. A finder pattern that took part in a read is not used again.
func detectCodes(ctx context.Context, bm *gozxing.BitMatrix) ([]found, []*detector.FinderPattern) {
	cands := finderCandidates(ctx, bm)
	triples := bestTriples(cands)
	used := map[*detector.FinderPattern]bool{}
	var out []found
	tried := 0
	for _, t := range triples {
		if tried >= maxTriples || ctx.Err() != nil {
			break
		}
		if used[t.bl] || used[t.tl] || used[t.tr] {
			continue
		}
		tried++
		// Only the likeliest triples get the slower retries (no alignment pattern, neighbouring sizes).
		if text, ok := sampleAndDecode(bm, t, tried <= 2); ok {
			used[t.bl], used[t.tl], used[t.tr] = true, true, true
			out = append(out, found{text: text})
		}
	}
	return out, cands
}

var decodeHints map[gozxing.DecodeHintType]interface{}

func sampleAndDecode(bm *gozxing.BitMatrix, t triple, retries bool) (string, bool) {
	dec := decoder.NewDecoder()
	try := func(bits *gozxing.BitMatrix) (string, bool) {
		r, err := dec.Decode(bits, decodeHints)
		if err != nil {
			return "", false
		}
		return r.GetText(), true
	}
	info := detector.NewFinderPatternInfo(t.bl, t.tl, t.tr)
	var dim int
	if res, err := detector.NewDetector(bm).ProcessFinderPatternInfo(info); err == nil {
		if text, ok := try(res.GetBits()); ok {
			return text, true
		}
		dim = res.GetBits().GetWidth()
	}
	if !retries {
		return "", false
	}
	// With the sizes next to the estimate (a tilted or bent code throws the dimension estimate off by a version;
	// gozxing gives up on an estimate between two versions), each with the alignment pattern searched for at that
	// size and, failing that, without it.
	mod := (t.bl.GetEstimatedModuleSize() + t.tl.GetEstimatedModuleSize() + t.tr.GetEstimatedModuleSize()) / 3
	est := int(math.Round((gozxing.ResultPoint_Distance(t.tl, t.tr)+gozxing.ResultPoint_Distance(t.tl, t.bl))/(2*mod))) + 7
	est = est - (est-17)%4 // dimensions are 17 + 4·version
	seen := map[int]bool{}
	for _, d := range []int{dim, est, est + 4, est - 4, est + 8} { // finders look bigger on a tilted card
		if d < 21 || d > 177 || seen[d] {
			continue
		}
		seen[d] = true
		if d != dim {
			if ap := alignment(bm, t, d, mod); ap != nil {
				if bits, err := detector.Detector_sampleGrid(bm, detector.Detector_createTransform(t.tl, t.tr, t.bl, ap, d), d); err == nil {
					if text, ok := try(bits); ok {
						return text, true
					}
				}
			}
		}
		if bits, err := detector.Detector_sampleGrid(bm, detector.Detector_createTransform(t.tl, t.tr, t.bl, nil, d), d); err == nil {
			if text, ok := try(bits); ok {
				return text, true
			}
		}
	}
	return "", false
}

// alignment looks for the bottom-right alignment pattern of a code of dimension dim, as gozxing's detector does
// for the dimension it estimates itself.
func alignment(bm *gozxing.BitMatrix, t triple, dim int, mod float64) *detector.AlignmentPattern {
	v, err := decoder.Version_GetProvisionalVersionForDimension(dim)
	if err != nil || len(v.GetAlignmentPatternCenters()) == 0 {
		return nil
	}
	brX := t.tr.GetX() - t.tl.GetX() + t.bl.GetX()
	brY := t.tr.GetY() - t.tl.GetY() + t.bl.GetY()
	k := 1 - 3/float64(v.GetDimensionForVersion()-7)
	ex, ey := int(t.tl.GetX()+k*(brX-t.tl.GetX())), int(t.tl.GetY()+k*(brY-t.tl.GetY()))
	for f := 4; f <= 16; f *= 2 {
		a := int(float64(f) * mod)
		x0, x1 := max(ex-a, 0), min(ex+a, bm.GetWidth()-1)
		y0, y1 := max(ey-a, 0), min(ey+a, bm.GetHeight()-1)
		if float64(x1-x0) < 3*mod || float64(y1-y0) < 3*mod {
			return nil
		}
		if ap, err := detector.NewAlignmentPatternFinder(bm, x0, y0, x1-x0, y1-y0, mod, nil).Find(); err == nil {
			return ap
		}
	}
	return nil
}
