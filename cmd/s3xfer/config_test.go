package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/transfer"
)

// awsHome writes ~/.aws/credentials and ~/.aws/config under a new home directory.
func awsHome(t *testing.T, credentials, config string) string {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".aws"), 0o700)
	os.WriteFile(filepath.Join(home, ".aws", "credentials"), []byte(credentials), 0o600)
	os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(config), 0o600)
	return home
}

const testCredentials = `# comment
[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = defaultsecret

[work]
aws_access_key_id=WORKKEY
aws_secret_access_key=worksecret
aws_session_token = worktoken
`

const testConfig = `[default]
region = eu-west-1
endpoint_url = http://default.example:9000
s3 =
  multipart_threshold = 64MB
  multipart_chunksize = 32MB
  max_concurrent_requests = 20
  max_bandwidth = 50MB/s
  addressing_style = path
max_attempts = 3

[profile work]
region = ap-east-1
services = work-services
s3 =
    max_concurrent_requests = 4

[services work-services]
s3 =
  endpoint_url = http://work.example:9000

[profile configonly]
aws_access_key_id = CONFIGKEY
aws_secret_access_key = configsecret
`

func resolveWith(t *testing.T, sf storeFlags, vars map[string]string) (settings, error) {
	t.Helper()
	e := &env{getenv: func(k string) string { return vars[k] }}
	return sf.resolve(e)
}

func TestPrecedence(t *testing.T) {
	home := awsHome(t, testCredentials, testConfig)
	base := map[string]string{"HOME": home}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name                       string
		flags                      storeFlags
		env                        map[string]string
		endpoint, region, key, tok string
		addressing                 transfer.Addressing
		attempts                   int
	}{
		{"profile only", storeFlags{}, base, "http://default.example:9000", "eu-west-1", "DEFAULTKEY", "", "path", 3},
		{"environment beats profile", storeFlags{}, with("AWS_ACCESS_KEY_ID", "ENVKEY", "AWS_SECRET_ACCESS_KEY", "envsecret", "AWS_SESSION_TOKEN", "envtoken",
			"AWS_ENDPOINT_URL", "http://env.example:9000", "AWS_REGION", "us-west-2", "AWS_MAX_ATTEMPTS", "5"),
			"http://env.example:9000", "us-west-2", "ENVKEY", "envtoken", "path", 5},
		{"flags beat environment", storeFlags{endpoints: endpointsFlag{"http://flag.example:9000/"}, region: "sa-east-1", addressing: "virtual", maxAttempts: 2},
			with("AWS_ENDPOINT_URL", "http://env.example:9000", "AWS_REGION", "us-west-2", "AWS_MAX_ATTEMPTS", "5"),
			"http://flag.example:9000", "sa-east-1", "DEFAULTKEY", "", "virtual", 2},
		{"AWS_ENDPOINT_URL_S3 beats AWS_ENDPOINT_URL", storeFlags{}, with("AWS_ENDPOINT_URL", "http://env.example:9000", "AWS_ENDPOINT_URL_S3", "http://s3.example:9000"),
			"http://s3.example:9000", "eu-west-1", "DEFAULTKEY", "", "path", 3},
		{"AWS_PROFILE: services section endpoint, session token", storeFlags{}, with("AWS_PROFILE", "work"),
			"http://work.example:9000", "ap-east-1", "WORKKEY", "worktoken", "", 0},
		{"AWS_PROFILE does not beat environment keys", storeFlags{}, with("AWS_PROFILE", "work", "AWS_ACCESS_KEY_ID", "ENVKEY", "AWS_SECRET_ACCESS_KEY", "envsecret"),
			"http://work.example:9000", "ap-east-1", "ENVKEY", "", "", 0},
		{"--profile beats environment keys", storeFlags{profile: "work"}, with("AWS_ACCESS_KEY_ID", "ENVKEY", "AWS_SECRET_ACCESS_KEY", "envsecret"),
			"http://work.example:9000", "ap-east-1", "WORKKEY", "worktoken", "", 0},
		{"--endpoint repeated and listed", storeFlags{endpoints: endpointsFlag{"http://n1:9000/", "http://n2:9000,http://n3:9000/"}}, base,
			"http://n1:9000,http://n2:9000,http://n3:9000", "eu-west-1", "DEFAULTKEY", "", "path", 3},
		{"AWS_ENDPOINT_URL listing nodes", storeFlags{}, with("AWS_ENDPOINT_URL", "http://n1:9000, http://n2:9000"),
			"http://n1:9000,http://n2:9000", "eu-west-1", "DEFAULTKEY", "", "path", 3},
		{"keys in the config file", storeFlags{profile: "configonly"}, base, "https://s3.amazonaws.com", "", "CONFIGKEY", "", "", 0},
		{"AWS_REGION picks the AWS endpoint", storeFlags{profile: "configonly"}, with("AWS_REGION", "eu-central-1"), "https://s3.eu-central-1.amazonaws.com", "eu-central-1", "CONFIGKEY", "", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := resolveWith(t, c.flags, c.env)
			if err != nil || st.credErr != nil {
				t.Fatal(err, st.credErr)
			}
			if st.endpoint != c.endpoint || st.region != c.region || st.accessKey != c.key || st.token != c.tok || st.addressing != c.addressing || st.maxAttempts != c.attempts {
				t.Errorf("got endpoint %q region %q key %q token %q addressing %q attempts %d", st.endpoint, st.region, st.accessKey, st.token, st.addressing, st.maxAttempts)
			}
		})
	}
}

// TestProfileS3Section checks the s3 section's transfer settings, and that flags beat them.
func TestProfileS3Section(t *testing.T) {
	home := awsHome(t, testCredentials, testConfig)
	st, err := resolveWith(t, storeFlags{}, map[string]string{"HOME": home})
	if err != nil {
		t.Fatal(err)
	}
	c, err := (&cpFlags{checksum: "auto"}).check(nil, st)
	if err != nil {
		t.Fatal(err)
	}
	if c.upload.PartSize != 32*units.MiB || c.upload.Threshold != 64*units.MiB || c.concurrency != 20 {
		t.Errorf("part size %d, threshold %d, concurrency %d; want 32 MiB, 64 MiB, 20", c.upload.PartSize, c.upload.Threshold, c.concurrency)
	}
	if r := c.lim.total.Rate(); r != 50*float64(units.MiB) {
		t.Errorf("max_bandwidth 50MB/s: rate %g, want 50 MiB/s (aws cli reads MB as MiB)", r)
	}
	c, err = (&cpFlags{checksum: "auto", partSize: "8MiB", threshold: "16MiB", concurrency: "3", limits: limitFlags{rate: "off"}}).check(nil, st)
	if err != nil {
		t.Fatal(err)
	}
	if c.upload.PartSize != 8*units.MiB || c.upload.Threshold != 16*units.MiB || c.concurrency != 3 || c.lim.total != nil {
		t.Errorf("flags should win: part size %d, threshold %d, concurrency %d, limiter %v", c.upload.PartSize, c.upload.Threshold, c.concurrency, c.lim.total)
	}
}

func TestProfileErrors(t *testing.T) {
	cases := map[string]struct{ config, want string }{
		"chunk size":  {"[default]\ns3 =\n  multipart_chunksize = 1MB\n", `multipart_chunksize in profile "default" 1 MiB is out of range`},
		"bad size":    {"[default]\ns3 =\n  multipart_threshold = big\n", `multipart_threshold in profile "default": "big": not a size`},
		"bandwidth":   {"[default]\ns3 =\n  max_bandwidth = fast\n", `max_bandwidth in profile "default": rate "fast": not a rate`},
		"concurrency": {"[default]\ns3 =\n  max_concurrent_requests = many\n", `max_concurrent_requests "many" in profile "default": not a whole number`},
		"addressing":  {"[default]\ns3 =\n  addressing_style = sideways\n", `addressing_style in profile "default" "sideways": use path, virtual or auto`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			home := awsHome(t, testCredentials, c.config)
			st, err := resolveWith(t, storeFlags{}, map[string]string{"HOME": home})
			if err == nil {
				_, err = (&cpFlags{checksum: "auto"}).check(nil, st)
			}
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want a usage error containing %q", err, c.want)
			}
		})
	}
}

func TestCredentialFilesFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	creds, conf := filepath.Join(dir, "c"), filepath.Join(dir, "f")
	os.WriteFile(creds, []byte("[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n"), 0o600)
	os.WriteFile(conf, []byte("[default]\nregion = xx-1\n"), 0o600)
	st, err := resolveWith(t, storeFlags{}, map[string]string{"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": conf})
	if err != nil || st.accessKey != "FILEKEY" || st.secretKey != "filesecret" || st.region != "xx-1" {
		t.Errorf("got %v, key %q, region %q", err, st.accessKey, st.region)
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"0s": 0, "0": 0, "7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1h", "a week", "7 days", "d"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("parseAge(%q): want an error", bad)
		}
	}
}

func TestLimitTree(t *testing.T) {
	lim, err := (&limitFlags{rate: "10MiB/s", upload: "4M"}).build("", "")
	if err != nil {
		t.Fatal(err)
	}
	if lim.total.Rate() != 10*float64(units.MiB) || lim.up.Rate() != 4*float64(units.MiB) || lim.down != lim.total {
		t.Errorf("total %g, up %g, down is total: %v", lim.total.Rate(), lim.up.Rate(), lim.down == lim.total)
	}
	lim, err = (&limitFlags{download: "80Mbit/s"}).build("", "")
	if err != nil || lim.total != nil || lim.up != nil || lim.down.Rate() != 10e6 {
		t.Errorf("download only: %v %v %v", err, lim.total, lim.up)
	}
	lim, err = (&limitFlags{schedule: "00:00,3MiB/s"}).build("1MB/s", "profile")
	if err != nil || lim.total.Rate() != 3*float64(units.MiB) {
		t.Errorf("a schedule starts at its current rate and beats the profile: %v", err)
	}
	if _, err := (&limitFlags{rate: "1M", schedule: "00:00,3MiB/s"}).build("", ""); err == nil {
		t.Error("--limit-rate with --limit-schedule: want an error")
	}
}

// TestCABundlePrecedence: --ca-bundle, else AWS_CA_BUNDLE, else the profile's ca_bundle
// (a leading ~/ is the home); --no-verify-ssl wins over all of them and warns on stderr.
func TestCABundlePrecedence(t *testing.T) {
	ca, _, _, err := testbed.NewCerts()
	if err != nil {
		t.Fatal(err)
	}
	home := awsHome(t, testCredentials, "[default]\nca_bundle = ~/profile-ca.pem\n")
	dir := t.TempDir()
	for _, f := range []string{filepath.Join(home, "profile-ca.pem"), filepath.Join(dir, "env-ca.pem"), filepath.Join(dir, "flag-ca.pem")} {
		if err := os.WriteFile(f, ca, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withEnv := map[string]string{"HOME": home, "AWS_CA_BUNDLE": filepath.Join(dir, "env-ca.pem")}
	noEnv := map[string]string{"HOME": home}
	cases := []struct {
		name             string
		flags            storeFlags
		vars             map[string]string
		wantFile, wantBy string
	}{
		{"flag", storeFlags{caBundle: filepath.Join(dir, "flag-ca.pem")}, withEnv, filepath.Join(dir, "flag-ca.pem"), "--ca-bundle"},
		{"env", storeFlags{}, withEnv, filepath.Join(dir, "env-ca.pem"), "AWS_CA_BUNDLE"},
		{"profile", storeFlags{}, noEnv, filepath.Join(home, "profile-ca.pem"), `ca_bundle in profile "default"`},
		{"no-verify-ssl", storeFlags{noVerifySSL: true, caBundle: "no-such-file"}, withEnv, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr strings.Builder
			e := &env{stderr: &stderr, getenv: func(k string) string { return c.vars[k] }}
			st, err := c.flags.resolve(e)
			if err != nil {
				t.Fatal(err)
			}
			if st.caBundle != c.wantFile || st.caFrom != c.wantBy || (st.rootCAs == nil) != (c.wantFile == "") {
				t.Errorf("CA bundle %q from %q (pool %v), want %q from %q", st.caBundle, st.caFrom, st.rootCAs != nil, c.wantFile, c.wantBy)
			}
			warned := strings.Contains(stderr.String(), "not verified")
			if st.insecure != c.flags.noVerifySSL || warned != c.flags.noVerifySSL || strings.Count(stderr.String(), "\n") > 1 {
				t.Errorf("insecure %v, stderr %q", st.insecure, stderr.String())
			}
		})
	}
}

// A list of endpoints with a bad entry fails with an error naming it.
func TestEndpointListErrors(t *testing.T) {
	vars := map[string]string{"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "secret"}
	for _, c := range []struct {
		flags endpointsFlag
		want  string
	}{
		{endpointsFlag{"http://a:1,,http://b:1"}, "has an empty entry"},
		{endpointsFlag{"http://a:1", "http://a:1/"}, "endpoint http://a:1 is given twice"},
		{endpointsFlag{"http://a:1", "http://k:s@b:1"}, "holds credentials"},
		{endpointsFlag{"http://a:1", "ftp://b:1"}, `endpoint "ftp://b:1" is not an http(s) URL`},
		{endpointsFlag{"http://a:1", "http://b:1/x"}, `endpoint "http://b:1/x" has a path`},
		{endpointsFlag{"https://127.0.0.1:"}, `endpoint "https://127.0.0.1:" has a colon but no port after it`},
		{endpointsFlag{"http://a:1", "b:"}, `endpoint "b:" has a colon but no port`},
	} {
		st, err := resolveWith(t, storeFlags{endpoints: c.flags}, vars)
		if err == nil {
			_, err = st.client(8, 0, nil)
		}
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--endpoint %s: err = %v, want a usage error saying %q", strings.Join(c.flags, " --endpoint "), err, c.want)
		}
	}
	st, err := resolveWith(t, storeFlags{endpoints: endpointsFlag{"http://a:1", "http://b:1"}}, vars)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := st.client(8, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if nodes, ok := s3.(*transfer.Nodes); !ok || len(nodes.Status()) != 2 {
		t.Fatalf("two endpoints: client %T, want *transfer.Nodes over both", s3)
	}
}
