package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// profile is what an aws cli profile says, from ~/.aws/credentials and ~/.aws/config.
// Empty fields are unset.
type profile struct {
	name                                string
	accessKey, secretKey, sessionToken  string
	region, endpoint                    string
	threshold, partSize, concurrency    string // the s3 section: multipart_threshold, multipart_chunksize, max_concurrent_requests
	bandwidth, addressing               string // max_bandwidth, addressing_style
	maxAttempts                         string // max_attempts
	caBundle                            string // ca_bundle
	credentialsFile, configFile, source string // where it came from, for messages
}

// loadProfile reads the profile named by --profile, else AWS_PROFILE, else "default",
// as the aws cli does: credentials from the credentials file (AWS_SHARED_CREDENTIALS_FILE,
// default ~/.aws/credentials), falling back to the config file (AWS_CONFIG_FILE, default
// ~/.aws/config), which also holds the region, endpoint_url, ca_bundle and the s3 section. Missing
// files are fine; a profile named explicitly must exist in one of them.
func loadProfile(e *env, name string) (profile, error) {
	explicit := name != "" || e.getenv("AWS_PROFILE") != ""
	name = first(name, e.getenv("AWS_PROFILE"), "default")
	p := profile{
		name:            name,
		credentialsFile: first(e.getenv("AWS_SHARED_CREDENTIALS_FILE"), underHome(e, ".aws", "credentials")),
		configFile:      first(e.getenv("AWS_CONFIG_FILE"), underHome(e, ".aws", "config")),
	}
	creds, err := readINI(p.credentialsFile)
	if err != nil {
		return p, err
	}
	conf, err := readINI(p.configFile)
	if err != nil {
		return p, err
	}
	cs, inCreds := creds[name]
	section := "profile " + name
	if name == "default" {
		section = "default"
	}
	ps, inConf := conf[section]
	if !inConf {
		ps, inConf = conf[name] // a bare [name] in the config file, as some tools write it
	}
	if explicit && !inCreds && !inConf {
		return p, usagef("profile %q is in neither %s nor %s; check AWS_PROFILE or --profile", name, tildeHome(e, p.credentialsFile), tildeHome(e, p.configFile))
	}
	get := func(key string) string { return first(cs[key], ps[key]) }
	p.accessKey, p.secretKey, p.sessionToken = get("aws_access_key_id"), get("aws_secret_access_key"), get("aws_session_token")
	p.region = ps["region"]
	// endpoint_url of the s3 section, of the profile, or of its services section.
	p.endpoint = first(ps["s3.endpoint_url"], conf["services "+ps["services"]]["s3.endpoint_url"], ps["endpoint_url"])
	p.threshold, p.partSize = ps["s3.multipart_threshold"], ps["s3.multipart_chunksize"]
	p.concurrency, p.bandwidth = ps["s3.max_concurrent_requests"], ps["s3.max_bandwidth"]
	p.addressing = ps["s3.addressing_style"]
	p.maxAttempts = ps["max_attempts"]
	p.caBundle = ps["ca_bundle"]
	p.source = fmt.Sprintf("profile %q", name)
	return p, nil
}

// underHome joins a path under $HOME; "" without a home, and then nothing is read.
func underHome(e *env, elem ...string) string {
	home := e.getenv("HOME")
	if home == "" {
		return ""
	}
	return filepath.Join(append([]string{home}, elem...)...)
}

// readINI reads an aws cli configuration file: [section] headers, key = value lines, and
// nested sections written as "s3 =" followed by indented "key = value" lines, returned
// as "s3.key". Lines starting with # or ; are comments. A missing file is empty.
func readINI(path string) (map[string]map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, unwrapPath(err))
	}
	out := map[string]map[string]string{}
	var sec map[string]string
	nest := "" // the key of the nested section being read, e.g. "s3"
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			name := strings.Join(strings.Fields(line[1:len(line)-1]), " ")
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			sec, nest = out[name], ""
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || sec == nil {
			continue
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		indented := raw[0] == ' ' || raw[0] == '\t'
		switch {
		case indented && nest != "":
			sec[nest+"."+k] = v
		case !indented && v == "":
			nest = k
		case !indented:
			sec[k], nest = v, ""
		}
	}
	return out, nil
}

// unwrapPath drops the *fs.PathError wrapper, whose message repeats the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
