package transfer

// Heavy throttling between the engine and a real MinIO: internal/faultproxy answers a
// large share of every kind of request, listings included, with 503 SlowDown. Listings
// must yield every key once, in order, and transfers must complete byte-identical; with
// one try per request the same jobs must fail (the tests can fail).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
)

// throttledListings counts the listing requests the proxy received and those it
// throttled, and how many of those throttled continued a listing (a later page).
func throttledListings(p *faultproxy.Proxy) (requests, throttled, laterPages int) {
	for _, rec := range p.Requests() {
		if !faultproxy.IsListing(&rec.Request) {
			continue
		}
		requests++
		if rec.Action.Fault == faultproxy.Respond {
			throttled++
			if rec.Query.Get("continuation-token") != "" || rec.Query.Get("start-after") != "" || rec.Query.Get("marker") != "" {
				laterPages++
			}
		}
	}
	return
}

// putMany stores keys directly on MinIO, each holding its own name.
func (b *faultBed) putMany(keys []string) {
	b.t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(keys))
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := b.store.Core.PutObject(context.Background(), b.bucket, k, strings.NewReader(k), int64(len(k)), "", "", minio.PutObjectOptions{})
			if err != nil {
				errs <- fmt.Errorf("%s: %w", k, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.t.Fatal(err)
	}
}

// oneTry is a retry policy that gives up on the first failure, throttled or not.
var oneTry = RetryPolicy{Attempts: 1, ThrottledAttempts: 1, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}

// TestThrottledListing lists 2,500 keys (three pages of MinIO's 1,000) through a proxy
// that throttles half of the listing requests, first pages and later ones: Manager.List
// yields every key once, in the store's order, and the proxy did throttle later pages.
// With one try per request the same listing ends in the SlowDown.
func TestThrottledListing(t *testing.T) {
	start := time.Now()
	b := newFaultBed(t, faultproxy.Throttle(13, 0.5, faultproxy.IsListing))
	keys := make([]string, 2500)
	for i := range keys {
		keys[i] = fmt.Sprintf("dir/%02d/key-%05d", i%17, i) // stored out of order
	}
	b.putMany(keys)
	b.put("dir-not-under-prefix", []byte("x"))
	want := slices.Clone(keys)
	slices.Sort(want)
	t.Logf("%d keys stored in %v", len(keys)+1, time.Since(start).Round(time.Millisecond))
	start = time.Now()

	ctx := bounded(t)
	m := b.manager(Config{})
	var got []string
	for o, err := range m.List(ctx, b.bucket, "dir/") {
		if err != nil {
			notHung(t, ctx, err)
			t.Fatalf("after %d keys: %v", len(got), err)
		}
		got = append(got, o.Key)
	}
	if !slices.Equal(got, want) {
		seen := map[string]int{}
		for _, k := range got {
			seen[k]++
		}
		dup := 0
		for _, n := range seen {
			dup += n - 1
		}
		t.Fatalf("listed %d keys (%d distinct, %d repeated, in order: %v); want the %d keys once each, in order",
			len(got), len(seen), dup, slices.IsSorted(got), len(want))
	}
	reqs, throttled, later := throttledListings(b.proxy)
	t.Logf("%d keys listed in %v; %d listing requests, %d throttled (%d of them continuing a listing)", len(got), time.Since(start).Round(time.Millisecond), reqs, throttled, later)
	if throttled == 0 || later == 0 || reqs-throttled < 3 {
		t.Fatalf("%d listing requests, %d throttled, %d of them on a later page: the schedule did not throttle first and later pages of a 3-page listing", reqs, throttled, later)
	}
	if !strings.Contains(b.log.String(), "retrying") {
		t.Error("the Manager's log shows no retry")
	}

	// The control: the same listing, one try per request. Each of its three pages is
	// throttled half the time, so a listing gets through once in eight: of four, at least
	// one must end in the SlowDown (the schedule is fixed by the seed: here all but one).
	one := b.manager(Config{Retry: oneTry})
	failed := 0
	for run := range 4 {
		n := 0
		var lerr error
		for _, err := range one.List(ctx, b.bucket, "dir/") {
			if err != nil {
				lerr = err
				break
			}
			n++
		}
		var te *Error
		switch {
		case lerr == nil && n != len(want):
			t.Fatalf("with one try, run %d: %d keys and no error", run, n)
		case lerr == nil:
		case !Throttled(lerr) || !errors.As(lerr, &te) || te.Op != "ListObjects":
			t.Fatalf("with one try, run %d: %d keys, then %v; want the SlowDown of a ListObjects", run, n, lerr)
		default:
			failed++
			t.Logf("with one try, run %d: %d keys, then %v", run, n, lerr)
		}
	}
	if failed == 0 {
		t.Fatal("with one try per request, 4 listings throttled at 50% all got through: the test cannot fail")
	}
}

// TestThrottledTransfers runs uploads in parts and in one PUT, downloads in ranges and
// copies in part copies through a proxy that answers 40% of every request (create, part, complete, HEAD,
// GET, copy) with SlowDown: each completes byte-identical with nothing left behind, and
// every kind of request was throttled. With one try per request each of them fails.
func TestThrottledTransfers(t *testing.T) {
	start := time.Now()
	b := newFaultBed(t, faultproxy.Throttle(13, 0.4, nil))
	ctx := bounded(t)
	m := b.manager(Config{})
	var src string
	for i := range 4 { // several of each: every kind of request gets its draws
		data := fpBytes(12*fpMiB+1000*i, uint64(30+i)) // 3 parts of 5 MiB, 4 ranges of 4 MiB
		key := fmt.Sprintf("big-%d", i)
		src = b.file(key, data)
		if _, err := m.Upload(ctx, b.bucket, key, src, UploadOptions{PartSize: 5 * fpMiB}); err != nil {
			notHung(t, ctx, err)
			t.Fatalf("upload %s: %v", key, err)
		}
		b.wantObject(key, data)
		dst := filepath.Join(b.dir, key+".down")
		if _, err := m.Download(ctx, b.bucket, key, dst, DownloadOptions{PartSize: 4 * fpMiB}); err != nil {
			notHung(t, ctx, err)
			t.Fatalf("download %s: %v", key, err)
		}
		b.wantFile(dst, data)
		if _, err := m.Copy(ctx, b.bucket, key, b.bucket, key+".copy", CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB, Threshold: 5 * fpMiB}}); err != nil {
			notHung(t, ctx, err)
			t.Fatalf("copy %s: %v", key, err)
		}
		b.wantObject(key+".copy", data)
		small := fpBytes(100<<10+i, uint64(40+i))
		key = fmt.Sprintf("small-%d", i)
		if _, err := m.Upload(ctx, b.bucket, key, b.file(key, small), UploadOptions{PartSize: 5 * fpMiB}); err != nil {
			notHung(t, ctx, err)
			t.Fatalf("upload %s: %v", key, err)
		}
		b.wantObject(key, small)
	}
	b.wantClean()

	stats := b.proxy.Stats()
	t.Logf("done in %v; proxy:\n%s", time.Since(start).Round(time.Millisecond), stats)
	for _, op := range []faultproxy.Op{faultproxy.CreateMultipartUpload, faultproxy.UploadPart, faultproxy.CompleteMultipartUpload,
		faultproxy.PutObject, faultproxy.HeadObject, faultproxy.GetObject, faultproxy.UploadPartCopy} {
		if o := stats[op]; o == nil || o.Faults[faultproxy.Respond] == 0 {
			t.Errorf("no %s was throttled: the run does not prove it survives throttling there", op)
		}
	}

	// The control: one try per request. Each job meets a SlowDown soon (40% of its
	// requests) and must fail with it.
	one := b.manager(Config{Retry: oneTry, Journal: nil})
	fails := 0
	for i := range 5 { // new keys: new schedules; a job of ~8 requests survives 40% with probability < 2%
		key := fmt.Sprintf("one-%d", i)
		_, err := one.Upload(ctx, b.bucket, key, src, UploadOptions{PartSize: 5 * fpMiB})
		if err != nil {
			if !Throttled(err) {
				t.Errorf("upload with one try failed, but not with the SlowDown: %v", err)
			}
			fails++
		}
	}
	if fails == 0 {
		t.Fatal("with one try per request, 5 throttled uploads all succeeded: the proxy does not throttle")
	}
	t.Logf("with one try: %d of 5 uploads failed with the SlowDown", fails)
}

// TestThrottledCopiesRaceTheChecksumProbe: two multipart copies of sources with a
// full-object CRC32C start together on a new Manager, as cp -r s3:// s3:// starts its
// large files. One copy's CreateMultipartUpload is held back (as throttling and its
// backoff hold it) while the other probes whether MinIO copies parts into a CRC32C upload
// (it does not: the probe aborts and starts over without). The held copy must then not
// go on with its CRC32C upload either.
func TestThrottledCopiesRaceTheChecksumProbe(t *testing.T) {
	release := make(chan struct{})
	b := newFaultBed(t, func(r *faultproxy.Request) faultproxy.Action {
		if r.Op == faultproxy.CreateMultipartUpload && r.Key == "a.copy" {
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
		}
		return faultproxy.Action{}
	})
	ctx := bounded(t)
	m := b.manager(Config{})
	data := map[string][]byte{"a": fpBytes(12*fpMiB+7, 51), "b": fpBytes(12*fpMiB+9, 52)}
	for key, d := range data {
		if _, err := m.Upload(ctx, b.bucket, key, b.file(key, d), UploadOptions{PartSize: 5 * fpMiB}); err != nil {
			t.Fatal(err)
		}
		if info, err := b.store.Core.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{Checksum: true}); err != nil || !isFullCRC32C(info) {
			t.Fatalf("source %s has no full-object CRC32C (%+v, %v): the copies would not probe", key, info.ChecksumCRC32C, err)
		}
	}
	copt := CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB, Threshold: 5 * fpMiB}}
	aErr := make(chan error, 1)
	go func() {
		_, err := m.Copy(ctx, b.bucket, "a", b.bucket, "a.copy", copt)
		aErr <- err
	}()
	for len(b.records(faultproxy.CreateMultipartUpload)) == 0 { // a's Create is held
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := m.Copy(ctx, b.bucket, "b", b.bucket, "b.copy", copt); err != nil {
		t.Fatalf("copy b: %v", err)
	}
	b.wantObject("b.copy", data["b"])
	close(release)
	if err := <-aErr; err != nil {
		t.Fatalf("copy a, whose CreateMultipartUpload was answered after copy b's probe found the store does not copy parts into a CRC32C upload: %v", err)
	}
	b.wantObject("a.copy", data["a"])
	b.wantClean()
}

// TestHeavilyThrottledDirectoryJobs: with 80% of every request answered SlowDown, more
// retries than the shared budget holds, directory jobs up, across and down still
// complete: a throttled retry waits for the budget instead of failing.
func TestHeavilyThrottledDirectoryJobs(t *testing.T) {
	b := newFaultBed(t, faultproxy.Throttle(29, 0.8, nil))
	ctx := bounded(t)
	m := b.manager(Config{Concurrency: 8, Retry: RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond, Budget: 100}})
	dir := filepath.Join(b.dir, "tree")
	files := map[string][]byte{}
	for i := range 12 {
		rel := fmt.Sprintf("d%d/f%02d", i%3, i)
		files[rel] = fpBytes(1000+i, uint64(i))
		if i == 0 {
			files[rel] = fpBytes(11*fpMiB, 99) // one in parts
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, files[rel], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := DirOptions{Upload: UploadOptions{PartSize: 5 * fpMiB}, Copy: CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB}}}
	if res, err := m.UploadDir(ctx, dir, b.bucket, "up", opts); err != nil || res.Done != len(files) {
		notHung(t, ctx, err)
		t.Fatalf("upload: %+v, %v", res, err)
	}
	if res, err := m.CopyDir(ctx, b.bucket, "up", b.bucket, "across", opts); err != nil || res.Done != len(files) {
		notHung(t, ctx, err)
		t.Fatalf("copy: %+v, %v", res, err)
	}
	back := filepath.Join(b.dir, "back")
	if res, err := m.DownloadDir(ctx, b.bucket, "across", back, opts); err != nil || res.Done != len(files) {
		notHung(t, ctx, err)
		t.Fatalf("download: %+v, %v", res, err)
	}
	for rel, data := range files {
		b.wantFile(filepath.Join(back, filepath.FromSlash(rel)), data)
	}
	b.wantClean()
	st := b.proxy.Stats().Total()
	if st.Faults[faultproxy.Respond] < st.Requests/2 {
		t.Fatalf("%d of %d requests throttled: the test did not throttle heavily", st.Faults[faultproxy.Respond], st.Requests)
	}
	t.Logf("%d requests, %d throttled", st.Requests, st.Faults[faultproxy.Respond])
}
