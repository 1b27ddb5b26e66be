package componentref

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// DefaultOrg is the organisation of a reference that names none
// (stellar-live-source@v1.0.0 is withobsrvr/stellar-live-source@v1.0.0),
// as in the earlier flowctl.
const DefaultOrg = "withobsrvr"

// Ref is a parsed component reference.
type Ref struct {
	// Raw is the reference as written.
	Raw string
	// Registry is the host (and port) a full reference names; "" means
	// the configured default registry (FLOWCTL_COMPONENT_REGISTRY).
	Registry string
	// Repository is the image repository without the host:
	// "withobsrvr/stellar-live-source".
	Repository string
	// Tag is the version; "" when only a digest pins the image.
	Tag string
	// Digest pins the image's manifest ("sha256:…"); "" when not pinned.
	Digest string
}

// Name is the last element of the repository: the component's name.
func (r Ref) Name() string {
	return r.Repository[strings.LastIndexByte(r.Repository, '/')+1:]
}

// Version is the tag, or the digest when no tag is given.
func (r Ref) Version() string {
	if r.Tag != "" {
		return r.Tag
	}
	return r.Digest
}

// Image is the OCI image reference to pull: the reference's own registry,
// else defaultRegistry (which may carry a path prefix, e.g.
// "ghcr.io/mirror").
func (r Ref) Image(defaultRegistry string) string {
	reg := r.Registry
	if reg == "" {
		reg = strings.TrimSuffix(defaultRegistry, "/")
	}
	s := reg + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// String returns the reference as written.
func (r Ref) String() string { return r.Raw }

// IsRef reports whether a `type:` value is meant as a component reference
// rather than a built-in's name: built-in names never hold '@', '/' or
// ':'. Whether it is a valid one is Parse's to say.
func IsRef(s string) bool { return strings.ContainsAny(s, "@/:") }

// RefHint is how to write a reference, for error messages.
const RefHint = "write NAME@VERSION, ORG/NAME@VERSION or HOST/ORG/NAME:VERSION, e.g. stellar-live-source@v1.0.0"

// Syntax of the OCI distribution spec.
var (
	pathComponent = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`) })
	tagRE         = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`) })
	digestRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^sha256:[a-f0-9]{64}$`) })
	hostRE        = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$`)
	})
)

// Parse reads a component reference. Its errors say what is wrong; the
// caller adds where and RefHint.
func Parse(s string) (Ref, error) {
	r := Ref{Raw: s}
	if s == "" {
		return r, fmt.Errorf("empty component reference")
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\r\n") {
		return r, fmt.Errorf("component reference %q has white space", s)
	}
	rest := s
	// A first element with a dot or a port, or localhost, is a registry
	// host (the rule docker and the OCI tools follow).
	if first, tail, ok := strings.Cut(s, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[")) {
		if !hostRE().MatchString(first) {
			return r, fmt.Errorf("%q is not a registry host", first)
		}
		r.Registry, rest = first, tail
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		v := rest[at+1:]
		rest = rest[:at]
		switch {
		case strings.HasPrefix(v, "sha256:") || strings.Contains(v, ":"):
			if !digestRE().MatchString(v) {
				return r, fmt.Errorf("digest %q is not sha256: and 64 lower-case hex digits", v)
			}
			r.Digest = v
		default:
			r.Tag = v
		}
	}
	// HOST/REPO:TAG (also with @digest after it); a short reference
	// takes its version after '@' only.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		if r.Registry == "" {
			return r, fmt.Errorf("%q: without a registry host the version follows '@' (%s@%s)", s, rest[:i], rest[i+1:])
		}
		if r.Tag != "" {
			return r, fmt.Errorf("%q has two versions (%q and %q)", s, rest[i+1:], r.Tag)
		}
		r.Tag, rest = rest[i+1:], rest[:i]
	}
	if strings.Contains(rest, "@") {
		return r, fmt.Errorf("%q has more than one '@'", s)
	}
	if r.Tag == "" && r.Digest == "" {
		return r, fmt.Errorf("%q has no version", s)
	}
	if r.Tag != "" && !tagRE().MatchString(r.Tag) {
		return r, fmt.Errorf("version %q may hold only letters, digits, '_', '.' and '-' (not first), at most 128", r.Tag)
	}
	if rest == "" {
		return r, fmt.Errorf("%q has no name", s)
	}
	elems := strings.Split(rest, "/")
	for _, e := range elems {
		if !pathComponent().MatchString(e) {
			if strings.ToLower(e) != e && pathComponent().MatchString(strings.ToLower(e)) {
				return r, fmt.Errorf("%q: image names are lower case (%q)", s, strings.ToLower(e))
			}
			return r, fmt.Errorf("%q: %q is not a valid name (lower-case letters and digits, joined by '.', '_' or '-')", s, e)
		}
	}
	if r.Registry == "" && len(elems) == 1 {
		elems = []string{DefaultOrg, elems[0]}
	}
	r.Repository = strings.Join(elems, "/")
	return r, nil
}
