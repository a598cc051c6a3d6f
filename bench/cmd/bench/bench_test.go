package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenIsDeterministicAcrossBlocks(t *testing.T) {
	g := gen{seed: 7, size: 3*genBlock + 100}
	all := make([]byte, g.size)
	if n, err := g.ReadAt(all, 0); n != len(all) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt all: %d, %v", n, err)
	}
	for _, off := range []int64{0, 1, genBlock - 3, genBlock, 2*genBlock + 17, g.size - 5} {
		p := make([]byte, 100)
		n, _ := g.ReadAt(p, off)
		if !bytes.Equal(p[:n], all[off:off+int64(n)]) {
			t.Errorf("ReadAt at %d differs from the whole", off)
		}
	}
	if n, err := g.ReadAt(make([]byte, 10), g.size-4); n != 4 || err != io.EOF {
		t.Errorf("short read at the end: %d, %v; want 4, EOF", n, err)
	}
	other := make([]byte, 64)
	_, _ = gen{seed: 8, size: 64}.ReadAt(other, 0)
	if bytes.Equal(other, all[:64]) {
		t.Error("different seeds gave the same bytes")
	}
}

func TestCompareReaders(t *testing.T) {
	want := gen{seed: 1, size: 3 << 20}
	buf := make([]byte, want.size)
	_, _ = want.ReadAt(buf, 0)
	if err := compareReaders(bytes.NewReader(buf), want, want.size); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(buf)
	bad[2<<20+5] ^= 1
	if err := compareReaders(bytes.NewReader(bad), want, want.size); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("a flipped bit: %v", err)
	}
	if err := compareReaders(bytes.NewReader(buf[:want.size-1]), want, want.size); err == nil {
		t.Error("a short object verified")
	}
	if err := compareReaders(bytes.NewReader(append(bytes.Clone(buf), 0)), want, want.size); err == nil {
		t.Error("a long object verified")
	}
}

func TestWindowRates(t *testing.T) {
	// 10 MB/s steady for 3 s, sampled every 10 ms, with a 100 ms pause in the middle.
	var s []sample
	var n int64
	for ms := 0; ms <= 3000; ms += 10 {
		s = append(s, sample{time.Duration(ms) * time.Millisecond, n})
		if ms < 1500 || ms >= 1600 {
			n += 100_000
		}
	}
	r := windowRates(s, 0, 3*time.Second, n)
	if math.Abs(r.Average-float64(n)/3) > 1 {
		t.Errorf("average %f, want %f", r.Average, float64(n)/3)
	}
	if math.Abs(r.Max1s-10e6) > 1e3 || math.Abs(r.Min1s-9e6) > 1e3 {
		t.Errorf("windows %f..%f, want 9e6..10e6", r.Min1s, r.Max1s)
	}
}

func TestSpliceKeepsHandWrittenText(t *testing.T) {
	doc := "# title\n\nintro\n\n" + beginMark + "\nold\n" + endMark + "\n\n## notes\nkept\n"
	got := splice(doc, "new\n")
	if !strings.Contains(got, "intro") || !strings.Contains(got, "## notes\nkept") || strings.Contains(got, "old") ||
		!strings.Contains(got, beginMark+"\nnew\n"+endMark) {
		t.Errorf("splice:\n%s", got)
	}
	if got := splice("", "x\n"); !strings.Contains(got, beginMark+"\nx\n"+endMark) {
		t.Errorf("splice into nothing:\n%s", got)
	}
}

func TestRatioPairsRuns(t *testing.T) {
	a := &row{samples: []Sample{{Run: 1, Wall: 1, OK: true}, {Run: 2, Wall: 2, OK: true}, {Run: 3, Wall: 9, OK: false}}}
	b := &row{samples: []Sample{{Run: 1, Wall: 2, OK: true}, {Run: 2, Wall: 2, OK: true}, {Run: 3, Wall: 1, OK: true}}}
	if got := ratio(a, b, 3); got != 0.75 {
		t.Errorf("ratio = %v, want the median of 0.5 and 1 (run 3 failed)", got)
	}
}

func TestBaselineIsNoPeer(t *testing.T) {
	b := baselineTool("86cc757")
	if b != "s3xfer-cli@86cc757" || !isBaseline(b) || isPeer(b) {
		t.Errorf("baseline tool %q: isBaseline %v, isPeer %v", b, isBaseline(b), isPeer(b))
	}
	if isBaseline(s3xferCLI) || !isPeer(rclone) || isPeer(s3xferCLI) {
		t.Error("isBaseline / isPeer misclassify the usual tools")
	}
	h := &harness{set: Settings{Baseline: "abc", PartSize: 1, Concurrency: 1}}
	for sc, want := range map[string]int{"upload": 2, "download": 3, "copy-1g": 2, "copy-6g": 0, "files": 0} {
		n := 0
		for _, e := range h.entries(sc) {
			if e.tool == baselineTool("abc") {
				n++
			}
		}
		if n != want {
			t.Errorf("%s: %d baseline steps, want %d", sc, n, want)
		}
	}
}

func TestReportedChecksum(t *testing.T) {
	out := `{"event":"started","key":"k"}` + "\n" + `{"event":"result","ok":true,"checksum":"crc32c"}` + "\n"
	if got := reportedChecksum(out); got != "crc32c" {
		t.Errorf("CLI --json: %q", got)
	}
	if got := reportedChecksum(`{"bytes":5,"checksum":"md5"}`); got != "md5" {
		t.Errorf("driver report: %q", got)
	}
	if got := reportedChecksum(`{"bytes":5}` + "\nnot json"); got != "" {
		t.Errorf("no checksum: %q", got)
	}
}

func TestStreamCommands(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"s3xfer", "rclone"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{bin: dir, work: dir, aws: "/usr/bin/aws", set: Settings{StreamSize: 1}}
	want := map[string]string{
		s3xferCLI + " " + streamFromFile: "cp /src s3://b/k",
		s3xferCLI + " " + streamStdin:    "cp - s3://b/k",
		s3xferCLI + " " + streamExpected: "cp - s3://b/k --endpoint E --quiet --expected-size 1TiB",
		awsCLI + " " + streamStdin:       "s3 cp --only-show-errors - s3://b/k",
		rclone + " " + streamStdin:       "rcat bench:b/k -q",
	}
	entries := h.entries("stream")
	if len(entries) != len(want) {
		t.Fatalf("%d stream entries, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		j := job{op: "upload", endpoint: "E", bucket: "b", key: "k", file: "/src"}
		if e.variant != streamFromFile {
			j.file, j.stdin = "", "/src"
		}
		if e.variant == streamExpected {
			j.expectedSize = streamExpectArg
		}
		cmd, err := h.command(e.tool, j)
		if err != nil {
			t.Fatalf("%s %s: %v", e.tool, e.variant, err)
		}
		got := strings.Join(cmd.Args[1:], " ")
		if w := want[e.tool+" "+e.variant]; w == "" || !strings.Contains(got, w) {
			t.Errorf("%s %s: %q, want it to contain %q", e.tool, e.variant, got, w)
		}
	}
	for _, tool := range []string{s3xferLib, minioGo, awsSDK} {
		if _, err := h.command(tool, job{op: "upload", stdin: "/src"}); !errors.Is(err, errNA) {
			t.Errorf("%s from stdin: %v, want errNA", tool, err)
		}
	}
	if got := keySafe("s3xfer-cli-" + streamExpected + "-r1"); got != "s3xfer-cli-stdin-expected-size1TiB-r1" {
		t.Errorf("keySafe: %q", got)
	}
}

func TestSyncCommands(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"s3xfer", "rclone"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{bin: dir, work: dir, aws: "/usr/bin/aws"}
	want := map[string]string{
		s3xferCLI + " default":        "sync /tree/ s3://b/p/ --endpoint E --quiet",
		awsCLI + " default":           "s3 sync --only-show-errors /tree s3://b/p/",
		rclone + " default":           "sync /tree bench:b/p/ -q",
		rclone + " " + rcloneInformed: "sync /tree bench:b/p/ -q --fast-list --checksum",
	}
	entries := h.entries(scSync100k)
	if len(entries) != len(want) {
		t.Fatalf("%d sync entries, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		j := job{op: "sync", endpoint: "E", dir: "/tree", bucket: "b", prefix: "p/"}
		if e.variant == rcloneInformed {
			j.flags = strings.Fields(rcloneInformed)
		}
		cmd, err := h.command(e.tool, j)
		if err != nil {
			t.Fatalf("%s %s: %v", e.tool, e.variant, err)
		}
		got := strings.Join(cmd.Args[1:], " ")
		if w := want[e.tool+" "+e.variant]; w == "" || !strings.Contains(got, w) {
			t.Errorf("%s %s: %q, want it to contain %q", e.tool, e.variant, got, w)
		}
	}
	if _, err := h.command(s3xferLib, job{op: "sync"}); err == nil {
		t.Error("the library driver has no sync, but a command was built")
	}
	if got := syncRel(42137, syncFiles(false)); got != "042/0042137" {
		t.Errorf("syncRel: %q", got)
	}
}

func TestSyncTargets(t *testing.T) {
	sample := func(tool, variant string, first, noop float64, rssKiB int64) Sample {
		return Sample{Run: 1, Scenario: scSync100k, Tool: tool, Variant: variant, Wall: first, MaxRSSKiB: rssKiB, OK: true,
			Extra: map[string]float64{"noop_wall_s": noop, "noop_rss_kib": float64(rssKiB) * 2}}
	}
	res := &Results{Settings: Settings{Runs: 1}, Samples: []Sample{
		sample(s3xferCLI, "default", 10, 3, 20<<10),
		sample(awsCLI, "default", 40, 5, 90<<10),      // fastest no-op: s3xfer only 1.67 × its speed
		sample(rclone, "default", 25, 60, 50<<10),     // fastest first sync: s3xfer 2.5 × its speed
		sample(rclone, rcloneInformed, 30, 9, 40<<10), // not the fastest at either
	}}
	var b strings.Builder
	renderSyncTargets(&b, tableOf(res))
	got := b.String()
	for _, w := range []string{
		"first sync: ≥ 2 × the fastest peer's speed, s3xfer at its defaults | – | 2.50 | – / yes (fastest: rclone default)",
		"no-op re-sync: ≥ 2 × the fastest peer's speed, s3xfer at its defaults | – | 1.67 | – / **no** (fastest: aws-cli default)",
		"first and no-op (MiB) | – | 40.0 | – / yes", // the no-op's 40 MiB, above the first sync's 20
	} {
		if !strings.Contains(got, w) {
			t.Errorf("targets lack %q:\n%s", w, got)
		}
	}
}

// --tools keeps only the named tools' steps, and the baseline CLI, which --baseline asks for.
func TestPlanKeepsOnlyTheNamedTools(t *testing.T) {
	h := &harness{set: Settings{Runs: 2, Scenarios: []string{"upload", scSync100k}, Baseline: "abc", Tools: []string{s3xferCLI, rclone}, PartSize: 1, Concurrency: 1}}
	seen := map[string]bool{}
	for _, st := range h.plan() {
		seen[st.tool] = true
	}
	if len(seen) != 3 || !seen[s3xferCLI] || !seen[rclone] || !seen[baselineTool("abc")] {
		t.Errorf("tools planned: %v, want s3xfer-cli, rclone and the baseline", seen)
	}
}

// The targets compare s3xfer's matched uploads with the ceiling's: in every run, forward
// or reversed, the ceiling's step is next to both.
func TestPlanPutsTheCeilingBesideTheMatchedUploads(t *testing.T) {
	h := &harness{set: Settings{Runs: 2, Scenarios: []string{"upload"}, PartSize: 1, Concurrency: 1}}
	steps := h.plan()
	for run := 1; run <= 2; run++ {
		at := map[string]int{}
		i := 0
		for _, st := range steps {
			if st.run != run {
				continue
			}
			if st.variant == "matched" {
				at[st.tool] = i
			}
			i++
		}
		c, ok := at[ceilingT]
		if !ok {
			t.Fatalf("run %d: no ceiling step", run)
		}
		for _, tool := range []string{s3xferLib, s3xferCLI} {
			if d := at[tool] - c; d != 1 && d != -1 {
				t.Errorf("run %d: %s's matched step is %d steps from the ceiling's, want 1", run, tool, d)
			}
		}
	}
}

// A run of the small files without aws cli (--tools) reports them without its targets.
func TestReportFilesWithoutAWSCLI(t *testing.T) {
	res := &Results{Settings: Settings{Runs: 1, Scenarios: []string{"files"}}}
	for _, tool := range []string{s3xferLib, s3xferCLI} {
		res.Samples = append(res.Samples, Sample{Run: 1, Scenario: "files", Tool: tool, Variant: "matched", Bytes: 1 << 20, Wall: 1, OK: true})
	}
	md := renderMarkdown(res, "")
	if !strings.Contains(md, "| s3xfer-lib | matched") || strings.Contains(md, "Small files: ≥ 2 × aws cli's speed") {
		t.Errorf("want the rows and no target against aws cli:\n%s", md)
	}
}

// The report lists a scenario's rows in the tools' order, whatever order they ran in, and
// gives the store's CPU per GiB where the samples have it.
func TestReportRowsInToolOrderWithTheStoresCPU(t *testing.T) {
	res := &Results{Settings: Settings{Runs: 1, Scenarios: []string{"upload"}}}
	for _, s := range []Sample{
		{Tool: s3xferLib, Variant: "matched", Extra: map[string]float64{"store_cpu_s": 5}},
		{Tool: ceilingT, Variant: "matched"},
		{Tool: s3xferCLI, Variant: "matched", Extra: map[string]float64{"store_cpu_s": 3}},
	} {
		s.Run, s.Scenario, s.Bytes, s.Wall, s.OK = 1, "upload", 2*gib, 1, true
		res.Samples = append(res.Samples, s)
	}
	md := renderMarkdown(res, "")
	lib, cli, ceil := strings.Index(md, "| s3xfer-lib | matched"), strings.Index(md, "| s3xfer-cli | matched"), strings.Index(md, "| ceiling | matched")
	if lib < 0 || cli < 0 || ceil < 0 || !(lib < cli && cli < ceil) {
		t.Fatalf("rows at %d (lib), %d (cli), %d (ceiling), want in that order:\n%s", lib, cli, ceil, md)
	}
	for tool, want := range map[string]string{s3xferLib: "| 2.50 |", s3xferCLI: "| 1.50 |", ceilingT: "| – |"} {
		line := md[strings.Index(md, "| "+tool+" | matched"):]
		line = line[:strings.IndexByte(line, '\n')]
		if cells := strings.Split(line, "|"); strings.TrimSpace(cells[8]) != strings.Trim(want, "| ") {
			t.Errorf("%s's store CPU s/GiB cell is %q, want %q: %s", tool, cells[8], want, line)
		}
	}
}

// Where the store was slow in some upload steps (over slowStore times the least CPU per
// byte of their row), the report gives the upload targets twice: over every run, and
// without those steps, saying how many it left out.
func TestReportUploadTargetsWithoutTheStoreSlow(t *testing.T) {
	res := &Results{Settings: Settings{Runs: 3, Scenarios: []string{"upload"}}}
	for run := 1; run <= 3; run++ {
		libWall, libStore := 1.0, 2.0
		if run >= 2 { // the store slow in the library's step only: twice the wall
			libWall, libStore = 2.0, 6.0
		}
		for _, s := range []Sample{
			{Tool: s3xferLib, Variant: "matched", Wall: libWall, Extra: map[string]float64{"store_cpu_s": libStore}},
			{Tool: ceilingT, Variant: "matched", Wall: 1, Extra: map[string]float64{"store_cpu_s": 2.2}},
		} {
			s.Run, s.Scenario, s.Bytes, s.OK = run, "upload", gib, true
			res.Samples = append(res.Samples, s)
		}
	}
	md := renderMarkdown(res, "")
	all := "| Upload throughput ≥ 0.97 × the ceiling client's (1024 MiB/s, in-memory unsigned PUTs) |"
	quiet := "| Upload throughput ≥ 0.97 × the ceiling client's (1024 MiB/s, in-memory unsigned PUTs) — without the 2 of 6 steps in which the store was slow |"
	line := func(prefix string) string {
		i := strings.Index(md, prefix)
		if i < 0 {
			t.Fatalf("no row %q in:\n%s", prefix, md)
		}
		l := md[i:]
		return l[:strings.IndexByte(l, '\n')]
	}
	// Over every run the pairs read 1.00, 0.50 and 0.50; without the slow steps, 1.00.
	if l := line(all); !strings.Contains(l, "| 0.50 |") {
		t.Errorf("over every run: %s", l)
	}
	if l := line(quiet); !strings.Contains(l, "| 1.00 |") {
		t.Errorf("without the slow step: %s", l)
	}
	for _, s := range res.Samples { // within 1.3 × the least: nothing left out
		if s.Tool == s3xferLib {
			s.Extra["store_cpu_s"] = 2.5
		}
	}
	if md := renderMarkdown(res, ""); strings.Contains(md, "in which the store was slow") {
		t.Errorf("no step was slow, yet the report leaves some out:\n%s", md)
	}
}
