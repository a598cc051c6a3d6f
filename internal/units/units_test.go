package units

import "testing"

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"0", 0, false},
		{"1048576", MiB, false},
		{"64MiB", 64 * MiB, false},
		{"64M", 64 * MiB, false},
		{"64mb", 64 * MiB, false},
		{"1.5G", GiB + GiB/2, false},
		{"5TiB", 5 * TiB, false},
		{"10 KiB", 10 * KiB, false},
		{"12B", 12, false},
		{"", 0, true},
		{"abc", 0, true},
		{"-1M", 0, true},
		{"5XB", 0, true},
		{"99999999999T", 0, true},
		{"nan", 0, true},
		{"inf", 0, true},
		{"NaNMiB", 0, true},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", KiB: "1 KiB", 64 * MiB: "64 MiB", GiB + GiB/2: "1.5 GiB"} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
}
