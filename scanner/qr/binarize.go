package qr

import (
	"github.com/makiuchi-d/gozxing"
)

// hybrid is gozxing's HybridBinarizer (ZXing's local-threshold binariser: 8×8 blocks, each thresholded at the
// average black point of the 5×5 blocks around it) computed straight into the bitmap's words, reading the plane
// through its stride and, when invert is set, as 255−v, so neither a copy nor an inverted copy of the plane is
// made. TestHybridMatchesGozxing holds it bit for bit to gozxing's.
func hybrid(lum []byte, w, h, stride int, invert bool) (*gozxing.BitMatrix, error) {
	const size, power, minRange = 8, 3, 24
	if w < 5*size || h < 5*size {
		// Too small for blocks: gozxing falls back to the global histogram, and so do we.
		src, err := planar(lum, w, h, stride)
		if err != nil {
			return nil, err
		}
		if invert {
			src = src.Invert()
		}
		return gozxing.NewGlobalHistgramBinarizer(src).GetBlackMatrix()
	}
	var flip int
	if invert {
		flip = 0xff
	}
	subW, subH := (w+size-1)>>power, (h+size-1)>>power
	maxX, maxY := w-size, h-size
	bp := make([]int, subW*subH) // black points
	for by := 0; by < subH; by++ {
		yo := min(by<<power, maxY)
		for bx := 0; bx < subW; bx++ {
			xo := min(bx<<power, maxX)
			sum, lo, hi := 0, 0xff, 0
			for yy := 0; yy < size; yy++ {
				row := lum[(yo+yy)*stride+xo : (yo+yy)*stride+xo+size]
				for _, v := range row {
					p := int(v) ^ flip
					sum += p
					lo, hi = min(lo, p), max(hi, p)
				}
				if hi-lo > minRange {
					// Enough contrast: the rest of the block only adds to the sum.
					for yy++; yy < size; yy++ {
						for _, v := range lum[(yo+yy)*stride+xo : (yo+yy)*stride+xo+size] {
							sum += int(v) ^ flip
						}
					}
				}
			}
			avg := sum >> (2 * power)
			if hi-lo <= minRange {
				// A flat block is taken as background, unless its neighbours' black points say it is dark.
				avg = lo / 2
				if by > 0 && bx > 0 {
					nb := (bp[(by-1)*subW+bx] + 2*bp[by*subW+bx-1] + bp[(by-1)*subW+bx-1]) / 4
					if lo < nb {
						avg = nb
					}
				}
			}
			bp[by*subW+bx] = avg
		}
	}
	rowSize := (w + 31) / 32
	words := make([]uint32, rowSize*h)
	for by := 0; by < subH; by++ {
		yo := min(by<<power, maxY)
		top := min(max(by, 2), subH-3)
		for bx := 0; bx < subW; bx++ {
			xo := min(bx<<power, maxX)
			left := min(max(bx, 2), subW-3)
			sum := 0
			for z := -2; z <= 2; z++ {
				r := bp[(top+z)*subW+left-2 : (top+z)*subW+left+3]
				sum += r[0] + r[1] + r[2] + r[3] + r[4]
			}
			t := sum / 25
			for yy := 0; yy < size; yy++ {
				row := lum[(yo+yy)*stride+xo : (yo+yy)*stride+xo+size : (yo+yy)*stride+xo+size]
				// Branch-free: bit i is 1 when pixel i is at most the threshold (a photo's pixels sit on
				// either side of it unpredictably).
				var bits uint32
				for xx, v := range row {
					bits |= uint32((t-(int(v)^flip))>>63+1) << xx
				}
				out := words[(yo+yy)*rowSize : (yo+yy+1)*rowSize]
				if xo&7 == 0 {
					out[xo>>5] |= bits << (xo & 31)
					continue
				}
				for xx := 0; xx < size; xx++ { // the last block column, moved left to fit: not byte-aligned
					if bits&(1<<xx) != 0 {
						x := xo + xx
						out[x>>5] |= 1 << (x & 31)
					}
				}
			}
		}
	}
	bm, err := gozxing.NewBitMatrix(w, h)
	if err != nil {
		return nil, err
	}
	arr := gozxing.NewBitArray(w)
	for y := 0; y < h; y++ {
		copy(arr.GetBitArray(), words[y*rowSize:(y+1)*rowSize])
		bm.SetRow(y, arr)
	}
	return bm, nil
}
