// Package units parses and formats byte sizes the way users write them:
// 64MiB, 64M, 64MB (binary multiples, as aws cli and rclone read them), or plain bytes.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// Binary size multiples.
const (
	KiB int64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var suffixes = []struct {
	name string
	mult int64
}{
	{"kib", KiB}, {"mib", MiB}, {"gib", GiB}, {"tib", TiB},
	{"kb", KiB}, {"mb", MiB}, {"gb", GiB}, {"tb", TiB},
	{"k", KiB}, {"m", MiB}, {"g", GiB}, {"t", TiB},
	{"b", 1},
}

// ParseSize parses a byte count such as "64MiB", "64M", "1.5G" or "1048576".
// Units are binary (1M = 1 MiB), as in aws cli's multipart_chunksize and rclone.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("size %q: empty; write a number with an optional unit such as 64MiB", s)
	}
	mult := int64(1)
	for _, suf := range suffixes {
		if strings.HasSuffix(t, suf.name) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, suf.name)), suf.mult
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || (n > 0 && mult > (1<<62)/n) {
			return 0, fmt.Errorf("size %q: out of range", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || !(f >= 0) || f*float64(mult) > 1<<62 { // !(f >= 0) also rejects NaN
		return 0, fmt.Errorf("size %q: not a size; write a number with an optional unit (B, KiB, MiB, GiB, TiB, or K, M, G, T)", s)
	}
	return int64(f * float64(mult)), nil
}

// FormatSize renders n bytes with a binary unit, e.g. "64 MiB" or "1.5 GiB".
func FormatSize(n int64) string {
	switch {
	case n >= TiB:
		return trim(float64(n)/float64(TiB)) + " TiB"
	case n >= GiB:
		return trim(float64(n)/float64(GiB)) + " GiB"
	case n >= MiB:
		return trim(float64(n)/float64(MiB)) + " MiB"
	case n >= KiB:
		return trim(float64(n)/float64(KiB)) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

func trim(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(f, 'f', 2, 64), "0"), ".")
}
