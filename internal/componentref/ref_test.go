package componentref

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		name, in               string
		registry, repo, tag, d string
		image                  string // with the default registry docker.io
		err                    string
	}{
		{name: "short", in: "stellar-live-source@v1.0.0", repo: "withobsrvr/stellar-live-source", tag: "v1.0.0",
			image: "docker.io/withobsrvr/stellar-live-source:v1.0.0"},
		{name: "org", in: "acme/ttp-processor@v2.1", repo: "acme/ttp-processor", tag: "v2.1", image: "docker.io/acme/ttp-processor:v2.1"},
		{name: "nested org", in: "acme/team/sink@1", repo: "acme/team/sink", tag: "1", image: "docker.io/acme/team/sink:1"},
		{name: "full", in: "ghcr.io/withobsrvr/stellar-live-source:v1.0.0", registry: "ghcr.io", repo: "withobsrvr/stellar-live-source", tag: "v1.0.0",
			image: "ghcr.io/withobsrvr/stellar-live-source:v1.0.0"},
		{name: "full with port", in: "127.0.0.1:5000/org/name:v1", registry: "127.0.0.1:5000", repo: "org/name", tag: "v1", image: "127.0.0.1:5000/org/name:v1"},
		{name: "localhost one element", in: "localhost/name:v1", registry: "localhost", repo: "name", tag: "v1", image: "localhost/name:v1"},
		{name: "full with @version", in: "ghcr.io/org/name@v3", registry: "ghcr.io", repo: "org/name", tag: "v3", image: "ghcr.io/org/name:v3"},
		{name: "full pinned", in: "ghcr.io/org/name:v1@" + dg, registry: "ghcr.io", repo: "org/name", tag: "v1", d: dg, image: "ghcr.io/org/name:v1@" + dg},
		{name: "full digest only", in: "ghcr.io/org/name@" + dg, registry: "ghcr.io", repo: "org/name", d: dg, image: "ghcr.io/org/name@" + dg},
		{name: "short digest", in: "name@" + dg, repo: "withobsrvr/name", d: dg, image: "docker.io/withobsrvr/name@" + dg},
		{name: "ipv6 host", in: "[::1]:5000/org/name:v1", registry: "[::1]:5000", repo: "org/name", tag: "v1", image: "[::1]:5000/org/name:v1"},

		{name: "empty", in: "", err: "empty component reference"},
		{name: "no version", in: "acme/name", err: "has no version"},
		{name: "empty version", in: "name@", err: "has no version"},
		{name: "full no version", in: "ghcr.io/org/name", err: "has no version"},
		{name: "colon in short", in: "name:v1", err: `without a registry host the version follows '@' (name@v1)`},
		{name: "two @", in: "a@b@c", err: "more than one '@'"},
		{name: "bad digest", in: "ghcr.io/org/name@sha256:abc", err: "is not sha256: and 64"},
		{name: "upper case", in: "Stellar-Source@v1", err: `image names are lower case ("stellar-source")`},
		{name: "bad element", in: "acme/-x@v1", err: `"-x" is not a valid name`},
		{name: "empty element", in: "acme//x@v1", err: `"" is not a valid name`},
		{name: "bad tag", in: "name@.v1", err: `version ".v1" may hold only`},
		{name: "no name", in: "@v1", err: "has no name"},
		{name: "white space", in: "name@v1 ", err: "white space"},
		{name: "two versions", in: "ghcr.io/org/name:v1@v2", err: "two versions"},
		{name: "bad host", in: "ex_ample.com/org/name:v1", err: "is not a registry host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %+v, %v; want an error with %q", tc.in, r, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if r.Registry != tc.registry || r.Repository != tc.repo || r.Tag != tc.tag || r.Digest != tc.d || r.Raw != tc.in {
				t.Fatalf("Parse(%q) = %+v", tc.in, r)
			}
			if got := r.Image(DefaultRegistry); got != tc.image {
				t.Fatalf("Image = %q, want %q", got, tc.image)
			}
		})
	}
}

func TestIsRef(t *testing.T) {
	for in, want := range map[string]bool{
		"file": false, "rate_limit": false, "stellar-live-source": false,
		"stellar-live-source@v1.0.0": true, "org/name": true, "ghcr.io/a/b:v": true,
	} {
		if got := IsRef(in); got != want {
			t.Errorf("IsRef(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestImageWithRegistryPrefix(t *testing.T) {
	r, err := Parse("name@v1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Image("registry.example.com:8443/mirror/"), "registry.example.com:8443/mirror/withobsrvr/name:v1"; got != want {
		t.Fatalf("Image = %q, want %q", got, want)
	}
	if r.Name() != "name" || r.Version() != "v1" {
		t.Fatalf("Name, Version = %q, %q", r.Name(), r.Version())
	}
}
