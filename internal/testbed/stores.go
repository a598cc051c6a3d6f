// Package testbed is s3xfer's own test bed: the real stores that scripts/test.sh starts,
// and OS helpers (a non-root file-system user, a tmpfs, a named pipe) for tests of bad
// local input. It is internal so that transfertest, public, holds only the in-memory
// fake and the conformance suite.
package testbed

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
)

// NoStoresMessage is what a test that needs real stores says when it skips.
const NoStoresMessage = "no real S3 stores configured: run scripts/test.sh, which starts them and sets S3XFER_TEST_STORES"

// Store is a real S3 store to test against, configured by the environment.
type Store struct {
	Name                           string // as listed in S3XFER_TEST_STORES, e.g. "minio"
	Endpoint, AccessKey, SecretKey string
	// CABundle is the file of the CA that signed an https store's certificate (TLSStore).
	CABundle string
	// Core talks to the store with path-style URLs and minio-go's retries off.
	Core *minio.Core
}

// RealStores returns the stores named in S3XFER_TEST_STORES (a comma-separated list,
// e.g. "minio,versitygw"), each configured by S3XFER_TEST_<NAME>_ENDPOINT
// (http://127.0.0.1:port), _ACCESS_KEY and _SECRET_KEY. It returns nil if the list is
// empty, and the caller skips with NoStoresMessage; but with S3XFER_REQUIRE_STORES=1
// it fails the test instead, so that CI never passes by skipping. A store missing its
// settings fails the test.
func RealStores(t testing.TB) []Store {
	t.Helper()
	var stores []Store
	for name := range strings.SplitSeq(os.Getenv("S3XFER_TEST_STORES"), ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		stores = append(stores, named(t, name))
	}
	if len(stores) == 0 && os.Getenv("S3XFER_REQUIRE_STORES") == "1" {
		t.Fatal("S3XFER_REQUIRE_STORES=1 but S3XFER_TEST_STORES is empty: " + NoStoresMessage)
	}
	return stores
}

// Distributed returns the distributed MinIO scripts/servers.sh's start_minio_dist starts
// (four server processes), with every node's endpoint and process ID, in order. Without
// it the test skips, or fails under S3XFER_REQUIRE_MINIODIST=1 (start_minio_dist sets it).
// Tests share the cluster, but never with one that kills a node (DistributedToKill).
func Distributed(t testing.TB) (s Store, endpoints []string, pids []int) {
	t.Helper()
	return distributed(t, false)
}

// DistributedToKill is Distributed for a test that kills a node (KillNode): it waits
// until no other test, in any test process, uses the cluster, and keeps it to itself
// until the test ends and the node it killed is back. Two nodes down would cost the
// cluster its write quorum; a job beside a node killed or readmitted sees parts vanish.
func DistributedToKill(t testing.TB) (s Store, endpoints []string, pids []int) {
	t.Helper()
	return distributed(t, true)
}

func distributed(t testing.TB, exclusive bool) (s Store, endpoints []string, pids []int) {
	t.Helper()
	if os.Getenv("S3XFER_TEST_MINIODIST_ENDPOINTS") == "" {
		if os.Getenv("S3XFER_REQUIRE_MINIODIST") == "1" {
			t.Fatal("S3XFER_REQUIRE_MINIODIST=1 but no distributed MinIO: scripts/test.sh starts one (start_minio_dist)")
		}
		t.Skip("no distributed MinIO: run scripts/test.sh, which starts one")
	}
	for _, p := range strings.Split(os.Getenv("S3XFER_TEST_MINIODIST_PIDS"), ",") {
		pid, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("S3XFER_TEST_MINIODIST_PIDS=%q: %v", os.Getenv("S3XFER_TEST_MINIODIST_PIDS"), err)
		}
		pids = append(pids, pid)
	}
	lockCluster(t, exclusive)
	return named(t, "miniodist"), strings.Split(os.Getenv("S3XFER_TEST_MINIODIST_ENDPOINTS"), ","), pids
}

// named is the store configured by S3XFER_TEST_<NAME>_ENDPOINT, _ACCESS_KEY and _SECRET_KEY.
func named(t testing.TB, name string) Store {
	t.Helper()
	env := "S3XFER_TEST_" + strings.ToUpper(name) + "_"
	s := Store{Name: name, Endpoint: os.Getenv(env + "ENDPOINT"), AccessKey: os.Getenv(env + "ACCESS_KEY"), SecretKey: os.Getenv(env + "SECRET_KEY")}
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		t.Fatalf("store %s: %sENDPOINT=%q, want a URL like http://127.0.0.1:9000", name, env, s.Endpoint)
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		t.Fatalf("store %s: set %sACCESS_KEY and %sSECRET_KEY", name, env, env)
	}
	client, err := s.client(u, nil)
	if err != nil {
		t.Fatalf("store %s: %v", name, err)
	}
	s.Core = &minio.Core{Client: client}
	return s
}

// TLSNoStoreMessage is what a test that needs the https store says when it skips.
const TLSNoStoreMessage = "no MinIO over https: scripts/test.sh starts one (scripts/servers.sh start_minio_tls) and sets S3XFER_TEST_MINIO_TLS_ENDPOINT"

// TLSStore returns the MinIO served over https with a certificate signed by a throwaway
// CA (scripts/servers.sh, start_minio_tls), configured by S3XFER_TEST_MINIO_TLS_ENDPOINT
// (https://127.0.0.1:port), _ACCESS_KEY, _SECRET_KEY and _CA_BUNDLE (the CA's PEM file).
// Its Core trusts that CA. Without it the test skips with TLSNoStoreMessage, but with
// S3XFER_REQUIRE_TLS=1 (scripts/test.sh sets it) it fails. It is not in
// S3XFER_TEST_STORES: every real-store test on it too would only repeat them.
func TLSStore(t testing.TB) Store {
	t.Helper()
	const env = "S3XFER_TEST_MINIO_TLS_"
	s := Store{Name: "minio_tls", Endpoint: os.Getenv(env + "ENDPOINT"), AccessKey: os.Getenv(env + "ACCESS_KEY"),
		SecretKey: os.Getenv(env + "SECRET_KEY"), CABundle: os.Getenv(env + "CA_BUNDLE")}
	if s.Endpoint == "" {
		if os.Getenv("S3XFER_REQUIRE_TLS") == "1" {
			t.Fatal("S3XFER_REQUIRE_TLS=1 but " + env + "ENDPOINT is not set: " + TLSNoStoreMessage)
		}
		t.Skip(TLSNoStoreMessage)
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Host == "" || u.Scheme != "https" {
		t.Fatalf("%sENDPOINT=%q, want a URL like https://127.0.0.1:9000", env, s.Endpoint)
	}
	if s.AccessKey == "" || s.SecretKey == "" || s.CABundle == "" {
		t.Fatalf("set %sACCESS_KEY, %sSECRET_KEY and %sCA_BUNDLE", env, env, env)
	}
	pem, err := os.ReadFile(s.CABundle)
	if err != nil {
		t.Fatalf("%sCA_BUNDLE: %v", env, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%sCA_BUNDLE=%s holds no PEM certificate", env, s.CABundle)
	}
	client, err := s.client(u, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	s.Core = &minio.Core{Client: client}
	return s
}

// client talks to the node or store at u with s's keys, path-style, with minio-go's
// retries off: failures must show, not be retried away. A nil tr is minio-go's own.
func (s Store) client(u *url.URL, tr http.RoundTripper) (*minio.Client, error) {
	return minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Transport:    tr,
		Region:       "us-east-1",
		MaxRetries:   1,
		BucketLookup: minio.BucketLookupPath,
	})
}

// NewBucket creates a bucket with a unique name and returns its name. When the test
// ends, the bucket is removed with its objects and incomplete uploads.
func (s Store) NewBucket(t testing.TB) string {
	t.Helper()
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := "s3xfer-test-" + hex.EncodeToString(r[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Core.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("store %s: creating bucket %s: %v", s.Name, name, err)
	}
	// t.Context is already cancelled when cleanups run.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.removeBucket(ctx, name); err != nil {
			t.Errorf("store %s: removing test bucket %s: %v", s.Name, name, err)
		}
	})
	return name
}

// removeBucket aborts the bucket's uploads, deletes its objects, then the bucket.
func (s Store) removeBucket(ctx context.Context, bucket string) error {
	// Without a prefix: MinIO takes a prefix as a whole key. One large page, since
	// versitygw fails on upload ID markers; a test leaves far fewer behind.
	ups, err := s.Core.ListMultipartUploads(ctx, bucket, "", "", "", "", 1000)
	if err != nil {
		return err
	}
	for _, u := range ups.Uploads {
		if err := s.Core.AbortMultipartUpload(ctx, bucket, u.Key, u.UploadID); err != nil {
			return err
		}
	}
	for o := range s.Core.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		if err := s.Core.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			return err
		}
	}
	return s.Core.RemoveBucket(ctx, bucket)
}

// Proxies puts a faultproxy, which counts and may fault requests, in front of each of
// endpoints of s (it signs with s's keys), closed when the test ends; it returns them
// and their URLs, in order.
func Proxies(t testing.TB, s Store, endpoints []string) ([]*faultproxy.Proxy, []string) {
	t.Helper()
	var proxies []*faultproxy.Proxy
	var urls []string
	for _, ep := range endpoints {
		p, err := faultproxy.Start(faultproxy.Config{Target: ep, Credentials: &faultproxy.Credentials{AccessKey: s.AccessKey, SecretKey: s.SecretKey}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		proxies, urls = append(proxies, p), append(urls, p.URL())
	}
	return proxies, urls
}
