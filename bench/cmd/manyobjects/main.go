// Command manyobjects runs one s3xfer directory job over a synthetic store of N objects
// and reports the process's peak RSS: the memory target of issue 14 ("peak RSS at most
// 64 MiB for a 1,000,000-object job") measured without a store that could hold them.
//
//	manyobjects [--objects N] [--concurrency C] [--journal-dir D] [--heapprofile F] [--cpuprofile F]
//
// The store generates its listing on the fly, in key order, one key at a time (O(1)
// memory), and answers StatObject and CopyObject at once without storing anything, so
// what grows is the library's alone. It runs transfer.Manager.CopyDir from src/ to dst/
// and prints one JSON line: objects, wall time, objects/s, peak RSS (VmHWM of
// /proc/self/status) and the Go heap's high-water mark as sampled.
package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

const (
	bucket    = "synthetic"
	srcPrefix = "src/"
	dstPrefix = "dst/"
	objSize   = 300 // bytes each, as the real cp-r scenarios' objects
)

func main() {
	n := flag.Int("objects", 1_000_000, "objects in the synthetic listing")
	conc := flag.Int("concurrency", 0, "the Manager's concurrency (0: its default)")
	journalDir := flag.String("journal-dir", "", "keep the job's journal here (Config.Journal), as the CLI does")
	heapProfile := flag.String("heapprofile", "", "write a heap profile here at the job's peak (largest in-use heap sampled)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here")
	stallFirst := flag.Bool("stall-first", false, "hold the copy of the first object until every other one is copied (a large file at the head of the job)")
	flag.Parse()
	if err := run(*n, *conc, *stallFirst, *journalDir, *heapProfile, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "manyobjects:", err)
		os.Exit(1)
	}
}

// Report is the JSON line manyobjects prints.
type Report struct {
	Objects       int     `json:"objects"`
	Done          int     `json:"done"`
	Copies        int64   `json:"copies"` // CopyObject calls the store answered
	Wall          float64 `json:"wall_s"`
	ObjectsPerSec float64 `json:"objects_per_s"`
	PeakRSSKiB    int64   `json:"peak_rss_kib"`  // VmHWM
	PeakHeapKiB   int64   `json:"peak_heap_kib"` // largest HeapInuse sampled every 50 ms
	Goroutines    int     `json:"max_goroutines"`
}

func run(n, conc int, stallFirst bool, journalDir, heapProfile, cpuProfile string) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	store := &synthetic{n: n}
	if stallFirst {
		store.stall = make(chan struct{})
	}
	cfg := transfer.Config{Concurrency: conc, Endpoint: "synthetic://"}
	if journalDir != "" {
		cfg.Journal = &resume.Store{Dir: journalDir}
	}
	m := transfer.New(store, cfg)

	// Sample the heap while the job runs; keep a profile of the largest in-use heap seen.
	stop := make(chan struct{})
	sampled := make(chan [2]int64)
	go func() {
		var peak, gor int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				sampled <- [2]int64{peak, gor}
				return
			case <-t.C:
			}
			runtime.ReadMemStats(&ms)
			gor = max(gor, int64(runtime.NumGoroutine()))
			if v := int64(ms.HeapInuse); v > peak {
				peak = v
				if heapProfile != "" {
					if f, err := os.Create(heapProfile); err == nil {
						_ = pprof.Lookup("heap").WriteTo(f, 0)
						_ = f.Close()
					}
				}
			}
		}
	}()

	start := time.Now()
	res, err := m.CopyDir(context.Background(), bucket, srcPrefix, bucket, dstPrefix, transfer.DirOptions{})
	wall := time.Since(start).Seconds()
	close(stop)
	s := <-sampled
	if err != nil {
		return err
	}
	if res.Files != n || res.Done != n {
		return fmt.Errorf("the job selected %d and copied %d of %d objects", res.Files, res.Done, n)
	}
	if c := store.copies.Load(); c != int64(n) {
		return fmt.Errorf("the store was asked for %d copies, want %d", c, n)
	}
	rep := Report{Objects: n, Done: res.Done, Copies: store.copies.Load(), Wall: wall, ObjectsPerSec: float64(n) / wall,
		PeakRSSKiB: vmHWM(), PeakHeapKiB: s[0] >> 10, Goroutines: int(s[1])}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// vmHWM is the process's peak resident set size in KiB, as the kernel counts it.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib
		}
	}
	return -1
}

// synthetic is a store of n objects src/000000000 .. under one bucket that exists only
// as a formula: every object has objSize bytes and the same ETag. Copies are counted and
// forgotten. It implements transfer.S3 and transfer.Lister.
type synthetic struct {
	n      int
	copies atomic.Int64
	// stall, if set, holds the copy of object 0 until the n-1 others are copied.
	stall chan struct{}
}

var etag = func() string { s := md5.Sum(make([]byte, objSize)); return hex.EncodeToString(s[:]) }()

var errNotHere = errors.New("synthetic store: not implemented")

func keyOf(i int) string { return fmt.Sprintf("%s%09d", srcPrefix, i) }

func (s *synthetic) info(key string) minio.ObjectInfo {
	return minio.ObjectInfo{Key: key, Size: objSize, ETag: etag, ContentType: "application/octet-stream",
		LastModified: time.Unix(1_700_000_000, 0)}
}

// ListObjects yields the keys in order from opts.StartAfter, one at a time.
func (s *synthetic) ListObjects(ctx context.Context, _ string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo {
	ch := make(chan minio.ObjectInfo, 1)
	go func() {
		defer close(ch)
		i := 0
		if opts.StartAfter != "" {
			if v, err := strconv.Atoi(strings.TrimPrefix(opts.StartAfter, srcPrefix)); err == nil {
				i = v + 1
			}
		}
		if !strings.HasPrefix(srcPrefix, opts.Prefix) && !strings.HasPrefix(opts.Prefix, srcPrefix) {
			return
		}
		for ; i < s.n; i++ {
			k := keyOf(i)
			if !strings.HasPrefix(k, opts.Prefix) {
				continue
			}
			select {
			case ch <- s.info(k):
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func (s *synthetic) RemoveObject(context.Context, string, string, minio.RemoveObjectOptions) error {
	return nil
}

func (s *synthetic) StatObject(_ context.Context, _, key string, _ minio.StatObjectOptions) (minio.ObjectInfo, error) {
	return s.info(key), nil
}

func (s *synthetic) CopyObject(ctx context.Context, _, srcObject, _, dstObject string, _ map[string]string, _ minio.CopySrcOptions, _ minio.PutObjectOptions) (minio.ObjectInfo, error) {
	if s.stall != nil && srcObject == keyOf(0) {
		select {
		case <-s.stall:
		case <-ctx.Done():
			return minio.ObjectInfo{}, ctx.Err()
		}
		s.copies.Add(1)
		return s.info(dstObject), nil
	}
	if c := s.copies.Add(1); s.stall != nil && c == int64(s.n-1) {
		close(s.stall) // the last of the others
	}
	return s.info(dstObject), nil
}

func (s *synthetic) BucketExists(context.Context, string) (bool, error) { return true, nil }

func (s *synthetic) ListBuckets(context.Context) ([]minio.BucketInfo, error) {
	return []minio.BucketInfo{{Name: bucket}}, nil
}

func (s *synthetic) PutObject(context.Context, string, string, io.Reader, int64, string, string, minio.PutObjectOptions) (minio.UploadInfo, error) {
	return minio.UploadInfo{}, errNotHere
}

func (s *synthetic) NewMultipartUpload(context.Context, string, string, minio.PutObjectOptions) (string, error) {
	return "", errNotHere
}

func (s *synthetic) PutObjectPart(context.Context, string, string, string, int, io.Reader, int64, minio.PutObjectPartOptions) (minio.ObjectPart, error) {
	return minio.ObjectPart{}, errNotHere
}

func (s *synthetic) ListObjectParts(context.Context, string, string, string, int, int) (minio.ListObjectPartsResult, error) {
	return minio.ListObjectPartsResult{}, errNotHere
}

func (s *synthetic) CompleteMultipartUpload(context.Context, string, string, string, []minio.CompletePart, minio.PutObjectOptions) (minio.UploadInfo, error) {
	return minio.UploadInfo{}, errNotHere
}

func (s *synthetic) AbortMultipartUpload(context.Context, string, string, string) error {
	return errNotHere
}

func (s *synthetic) ListMultipartUploads(context.Context, string, string, string, string, string, int) (minio.ListMultipartUploadsResult, error) {
	return minio.ListMultipartUploadsResult{}, nil
}

func (s *synthetic) CopyObjectPart(context.Context, string, string, string, string, string, int, int64, int64, map[string]string) (minio.CompletePart, error) {
	return minio.CompletePart{}, errNotHere
}

func (s *synthetic) GetObject(context.Context, string, string, minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	return nil, minio.ObjectInfo{}, nil, errNotHere
}

func (s *synthetic) GetObjectAttributes(context.Context, string, string, minio.ObjectAttributesOptions) (*minio.ObjectAttributes, error) {
	return nil, errNotHere
}

var _ transfer.S3 = (*synthetic)(nil)
var _ transfer.Lister = (*synthetic)(nil)
