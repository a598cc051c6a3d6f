package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

// storeFlags say how to reach the store. Each setting comes from its flag, else the
// environment, else the profile (settings.resolve).
type storeFlags struct {
	endpoints                   endpointsFlag
	region, addressing, profile string
	caBundle                    string
	sigV2, noSign, noVerifySSL  bool
	maxAttempts                 int
}

func (s *storeFlags) add(fs *flag.FlagSet) {
	fs.Var(&s.endpoints, "endpoint", "store `URL`, e.g. http://127.0.0.1:9000; the nodes of one distributed store: repeat it or give a comma-separated list, and requests are spread over them (default $AWS_ENDPOINT_URL, the profile's endpoint_url, else AWS)")
	fs.StringVar(&s.region, "region", "", "region (default $AWS_REGION, the profile's region, else us-east-1)")
	fs.StringVar(&s.profile, "profile", "", "profile of ~/.aws/credentials and ~/.aws/config (default $AWS_PROFILE, else default)")
	fs.StringVar(&s.addressing, "addressing", "", "bucket addressing: path, virtual or auto (default: the profile's s3 addressing_style, else auto: path except on AWS)")
	fs.BoolVar(&s.sigV2, "sigv2", false, "sign with AWS signature version 2 (old Ceph RGW, KS3)")
	fs.BoolVar(&s.noSign, "no-sign-request", false, "send anonymous requests (public buckets); no credentials needed")
	fs.StringVar(&s.caBundle, "ca-bundle", "", "PEM file of the certificate authorities to trust for an https endpoint, in place of the system's (default $AWS_CA_BUNDLE, the profile's ca_bundle)")
	fs.BoolVar(&s.noVerifySSL, "no-verify-ssl", false, "do not verify the store's TLS certificate (insecure: anyone on the path can read and change the data)")
	fs.IntVar(&s.maxAttempts, "max-attempts", 0, "tries per request, the first included (default $AWS_MAX_ATTEMPTS, the profile's max_attempts, else 6)")
}

// endpointsFlag is --endpoint, given several times or as a comma-separated list.
type endpointsFlag []string

func (f *endpointsFlag) String() string { return strings.Join(*f, ",") }

func (f *endpointsFlag) Set(v string) error {
	*f = append(*f, strings.Split(v, ",")...)
	return nil
}

// settings is the resolved configuration of a run.
type settings struct {
	endpoint, region            string // endpoint: the store's endpoints, comma-separated (a journal names the store so)
	addressing                  transfer.Addressing
	accessKey, secretKey, token string
	sigV2, anonymous            bool
	maxAttempts                 int
	rootCAs                     *x509.CertPool // the CA bundle's; nil: the system's
	caBundle, caFrom            string         // the CA bundle file and where it was given, for messages
	insecure                    bool           // --no-verify-ssl
	prof                        profile
	credErr                     error // no usable credentials: reported when a client is needed
}

// resolve applies the precedence: flags, then the environment, then the profile.
// Credentials follow the aws cli: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY win over
// the profile's, except when --profile names the profile explicitly.
func (s *storeFlags) resolve(e *env) (settings, error) {
	prof, err := loadProfile(e, s.profile)
	if err != nil {
		return settings{}, err
	}
	st := settings{prof: prof, sigV2: s.sigV2, anonymous: s.noSign}
	st.endpoint = first(s.endpoints.String(), e.getenv("AWS_ENDPOINT_URL_S3"), e.getenv("AWS_ENDPOINT_URL"), prof.endpoint)
	st.region = first(s.region, e.getenv("AWS_REGION"), e.getenv("AWS_DEFAULT_REGION"), prof.region)
	if st.endpoint == "" {
		st.endpoint = "https://s3.amazonaws.com"
		if st.region != "" && st.region != "us-east-1" {
			st.endpoint = "https://s3." + st.region + ".amazonaws.com"
		}
	}
	if st.endpoint, err = cleanEndpoints(st.endpoint); err != nil {
		return st, err
	}
	switch a := strings.ToLower(first(s.addressing, prof.addressing)); a {
	case "", "auto":
	case "path", "virtual":
		st.addressing = transfer.Addressing(a)
	default:
		from := "--addressing"
		if s.addressing == "" {
			from = "addressing_style in " + prof.source
		}
		return st, usagef("%s %q: use path, virtual or auto", from, a)
	}
	attempts := first(e.getenv("AWS_MAX_ATTEMPTS"), prof.maxAttempts)
	st.maxAttempts = s.maxAttempts
	if st.maxAttempts == 0 && attempts != "" {
		if st.maxAttempts, err = strconv.Atoi(attempts); err != nil || st.maxAttempts < 1 {
			return st, usagef("max attempts %q (AWS_MAX_ATTEMPTS or max_attempts in %s): use a whole number of at least 1", attempts, prof.source)
		}
	}
	if st.maxAttempts < 0 || st.maxAttempts > 100 {
		return st, usagef("--max-attempts %d: use 1 to 100", st.maxAttempts)
	}
	if err := st.resolveTLS(e, s); err != nil {
		return st, err
	}
	if st.anonymous {
		return st, nil
	}
	envKey, envSecret := e.getenv("AWS_ACCESS_KEY_ID"), e.getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case (envKey == "") != (envSecret == ""):
		missing := "AWS_SECRET_ACCESS_KEY"
		if envKey == "" {
			missing = "AWS_ACCESS_KEY_ID"
		}
		st.credErr = usagef("incomplete credentials in the environment: %s is not set", missing)
	case envKey != "" && (s.profile == "" || prof.accessKey == ""):
		st.accessKey, st.secretKey, st.token = envKey, envSecret, e.getenv("AWS_SESSION_TOKEN")
	case prof.accessKey != "" && prof.secretKey != "":
		st.accessKey, st.secretKey, st.token = prof.accessKey, prof.secretKey, prof.sessionToken
	case prof.accessKey != "" || prof.secretKey != "":
		st.credErr = usagef("%s has only one of aws_access_key_id and aws_secret_access_key; give both", prof.source)
	default:
		st.credErr = usagef("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in %s (or --no-sign-request for a public bucket)", tildeHome(e, prof.credentialsFile))
	}
	return st, nil
}

// cleanEndpoints checks a comma-separated list of endpoints and writes it without
// trailing slashes.
func cleanEndpoints(list string) (string, error) {
	eps := strings.Split(list, ",")
	seen := map[string]bool{}
	for i, ep := range eps {
		ep = strings.TrimSuffix(strings.TrimSpace(ep), "/")
		if u, err := url.Parse(ep); err == nil && u.User != nil {
			return "", usagef("the endpoint URL holds credentials; give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile, never in the URL")
		}
		switch {
		case ep == "":
			return "", usagef("endpoint list %q has an empty entry; give each node's URL once, comma-separated or with --endpoint repeated", list)
		case seen[ep]:
			return "", usagef("endpoint %s is given twice; give each node of the store once", ep)
		}
		seen[ep], eps[i] = true, ep
	}
	return strings.Join(eps, ","), nil
}

// resolveTLS reads the CA bundle of --ca-bundle, else AWS_CA_BUNDLE, else the profile's
// ca_bundle, as the aws cli does: its certificates replace the system's for an https
// endpoint. --no-verify-ssl wins over a bundle and prints a warning, once per run, to
// stderr (never stdout, which may carry --json or an object's bytes).
func (st *settings) resolveTLS(e *env, s *storeFlags) error {
	if s.noVerifySSL {
		st.insecure = true
		fmt.Fprintln(e.stderr, "s3xfer: warning: --no-verify-ssl: the store's TLS certificate is not verified; anyone on the network path can read and change the data")
		return nil
	}
	switch {
	case s.caBundle != "":
		st.caBundle, st.caFrom = s.caBundle, "--ca-bundle"
	case e.getenv("AWS_CA_BUNDLE") != "":
		st.caBundle, st.caFrom = e.getenv("AWS_CA_BUNDLE"), "AWS_CA_BUNDLE"
	case st.prof.caBundle != "":
		st.caBundle, st.caFrom = st.prof.caBundle, "ca_bundle in "+st.prof.source
	default:
		return nil
	}
	if rest, ok := strings.CutPrefix(st.caBundle, "~/"); ok && e.getenv("HOME") != "" {
		st.caBundle = filepath.Join(e.getenv("HOME"), rest)
	}
	data, err := os.ReadFile(st.caBundle)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("CA bundle %s (%s) does not exist; give the PEM file of the certificate authority that signed the store's certificate", st.caBundle, st.caFrom)
	case err != nil:
		return usagef("cannot read CA bundle %s (%s): %v; give a readable PEM file of the store's certificate authority", st.caBundle, st.caFrom, unwrapPath(err))
	}
	st.rootCAs = x509.NewCertPool()
	if !st.rootCAs.AppendCertsFromPEM(data) {
		return usagef("CA bundle %s (%s) holds no PEM certificate; give a file with -----BEGIN CERTIFICATE----- blocks (openssl x509 -inform der -in CA.der -out ca.pem converts a DER one)", st.caBundle, st.caFrom)
	}
	return nil
}

// httpClient is a plain HTTP client for the store that trusts what its client trusts.
func (st settings) httpClient() *http.Client {
	if st.rootCAs == nil && !st.insecure {
		return http.DefaultClient
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{RootCAs: st.rootCAs, InsecureSkipVerify: st.insecure},
	}}
}

// client builds the store client: over several endpoints, one that spreads requests
// over them. Its errors never hold a secret.
func (st settings) client(concurrency int, idle time.Duration, log *slog.Logger) (transfer.S3, error) {
	if st.credErr != nil {
		return nil, st.credErr
	}
	cc := transfer.ClientConfig{
		Endpoints:          strings.Split(st.endpoint, ","),
		AccessKey:          st.accessKey,
		SecretKey:          st.secretKey,
		SessionToken:       st.token,
		Region:             st.region,
		Addressing:         st.addressing,
		SignatureV2:        st.sigV2,
		Concurrency:        concurrency,
		RootCAs:            st.rootCAs,
		InsecureSkipVerify: st.insecure,
		// A Complete of a large upload may take a while to answer: as long as the watchdog allows.
		ResponseHeaderTimeout: max(idle, transfer.DefaultIdleTimeout),
		Logger:                log,
	}
	var s3 transfer.S3
	var err error
	if len(cc.Endpoints) == 1 {
		s3, err = transfer.NewClient(cc)
	} else {
		s3, err = transfer.NewNodes(cc)
	}
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return s3, nil
}

// endpointOf is the endpoint err is the failure of: the one a request failed at, else
// the first of the store's.
func (st settings) endpointOf(err error) string {
	if ee, ok := errors.AsType[*transfer.EndpointError](err); ok {
		return ee.Endpoint
	}
	ep, _, _ := strings.Cut(st.endpoint, ",")
	return ep
}

// secrets returns what must never be printed.
func (st settings) secrets() []string {
	var s []string
	for _, v := range []string{st.secretKey, st.token} {
		if len(v) >= 4 {
			s = append(s, v)
		}
	}
	return s
}

// logger is --verbose's logger: on stderr, through the ui, so that a log line and the
// progress display never write into each other.
func logger(u *ui, verbose bool) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(u.logWriter(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// journalStore returns the journal directory: --journal-dir, else $XDG_STATE_HOME/s3xfer,
// else ~/.local/state/s3xfer (resume.DefaultDir, read through env for tests).
func journalStore(e *env, dir string) *resume.Store {
	if dir == "" {
		base := e.getenv("XDG_STATE_HOME")
		if !filepath.IsAbs(base) {
			base = underHome(e, ".local", "state")
		}
		if base == "" {
			return &resume.Store{} // resume.DefaultDir decides, or fails clearly
		}
		dir = filepath.Join(base, "s3xfer")
	}
	return &resume.Store{Dir: dir}
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// s3URL is a parsed s3://bucket/key.
type s3URL struct{ bucket, key string }

func (u s3URL) String() string { return "s3://" + u.bucket + "/" + u.key }

// dir reports whether the URL names a "directory": no key, or a key ending in /.
func (u s3URL) dir() bool { return u.key == "" || strings.HasSuffix(u.key, "/") }

func isS3(arg string) bool { return strings.HasPrefix(arg, "s3://") }

func parseS3URL(arg string) (s3URL, error) {
	rest, ok := strings.CutPrefix(arg, "s3://")
	if !ok {
		return s3URL{}, usagef("%q is not an s3:// URL", arg)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return s3URL{}, usagef("%q has no bucket; write s3://BUCKET/KEY", arg)
	}
	if err := s3utils.CheckValidBucketName(bucket); err != nil { // as lenient as minio-go is at the first request
		return s3URL{}, usagef("%q: bucket %q: %v; check the bucket's name", arg, bucket, err)
	}
	if len(key) > 1024 {
		return s3URL{}, usagef("key of %q is %d bytes; S3 keys are at most 1024", arg[:40]+"...", len(key))
	}
	return s3URL{bucket, key}, nil
}

// tildeHome writes a path under the home directory as ~/...
func tildeHome(e *env, path string) string {
	home := e.getenv("HOME")
	if rel, err := filepath.Rel(home, path); home != "" && err == nil && filepath.IsLocal(rel) {
		return "~/" + filepath.ToSlash(rel)
	}
	return path
}
