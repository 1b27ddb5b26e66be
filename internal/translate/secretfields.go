package translate

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/flowctl/flowctl/internal/spec"
)

// The files and environment variables a built-in reads its secrets from
// when it opens (a CA, a client key, a password, an API key). Under
// `flowctl run` they are this machine's; in a container they must be
// carried there, the way a user of the engine carries secrets:
//
//   - a file named by a relative path is mounted read-only, as a secret
//     (Compose file secret, Kubernetes Secret volume, Nomad variable
//     rendered by a template), exactly where the unchanged config value
//     resolves inside the container: the node loads the pipeline file
//     from pipelineDir, and the built-ins resolve relative paths against
//     that directory, so "certs/ca.pem" is read from
//     /etc/flowctl/certs/ca.pem. The pipeline file is never rewritten: it
//     stays the same file everywhere (and byte for byte what the
//     ConfigMap and the Nomad template hold). A CA certificate is not
//     secret, but one rule for every file is simpler to trust than two;
//   - a file named by an absolute path, or outside the pipeline file's
//     directory, is not mounted (as for localFile): unless a volume or a
//     secret of the component provides that path, a warning says so;
//   - an environment variable is passed into the container without its
//     value in the output (Compose: a key without a value, taken from the
//     environment docker-compose runs in; Kubernetes: secretKeyRef from
//     the PIPELINE-env Secret; Nomad: a template from the task's
//     variable).

// secretField is one config field of a built-in that names a file or an
// environment variable holding a secret. Exactly one of file and env is
// set, each a config path ("tls.ca_file").
type secretField struct {
	file, env string
	// unless is a field that takes precedence over env when it is set
	// (the file alternative): the variable is not read then.
	unless string
	// required reports whether the component fails to open without the
	// variable, given its config (defaults applied).
	required func(get func(path string) string) bool
}

// builtinSecretFields are the fields of every built-in (by namespaced id)
// that name a secret's file or variable. The variables' default names
// (KAFKA_PASSWORD, OPENAI_API_KEY) are the specs' defaults, already in
// the component's config, so they are not repeated here.
var builtinSecretFields = map[string][]secretField{
	"source.kafka":  kafkaSecretFields,
	"sink.kafka":    kafkaSecretFields,
	"source.nats":   natsSecretFields,
	"sink.nats":     natsSecretFields,
	"processor.llm": llmSecretFields,
}

var (
	kafkaSecretFields = []secretField{
		{file: "tls.ca_file"}, {file: "tls.cert_file"}, {file: "tls.key_file"},
		{file: "sasl.password_file"},
		// password_env has a default: present with sasl, absent without.
		{env: "sasl.password_env", unless: "sasl.password_file", required: always},
	}
	natsSecretFields = []secretField{{file: "credentials"}}
	llmSecretFields  = []secretField{
		{file: "api_key_file"},
		// Only api.openai.com refuses to run without a key; a local
		// server is asked without Authorization.
		{env: "api_key_env", unless: "api_key_file", required: func(get func(string) string) bool {
			u, err := url.Parse(get("url"))
			return err == nil && strings.EqualFold(u.Hostname(), "api.openai.com")
		}},
	}
)

func always(func(string) string) bool { return true }

// secretFile is a file of a built-in's config carried into its container.
type secretFile struct {
	// field is the config path that names it ("tls.ca_file"); the first
	// one when several name the same file.
	field string
	// rel is the file relative to the pipeline file's directory,
	// slash-separated and clean.
	rel string
	// target is where the component reads it in the container.
	target string
}

// secretEnv is an environment variable a built-in reads a secret from.
type secretEnv struct {
	// field is the config path that names it ("sasl.password_env").
	field string
	name  string
	// required is true when the component does not open without it.
	required bool
}

// configString is the string at a dotted path of a config ("" when absent
// or not a string).
func configString(cfg map[string]any, p string) string {
	var cur any = cfg
	for _, k := range strings.Split(p, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[k]
	}
	s, _ := cur.(string)
	return s
}

// secretFields fills n.secretFiles and n.secretEnvs from its built-in's
// config, warning about the files no container will have.
func (pl *plan) secretFields(n *node) {
	c := n.c
	fields, ok := builtinSecretFields[string(c.Role)+"."+c.Type]
	if !ok || c.Runner != spec.RunBuiltin {
		return
	}
	get := func(p string) string { return configString(c.Config, p) }
	seen := map[string]bool{}
	for _, f := range fields {
		switch {
		case f.file != "":
			if v := get(f.file); v != "" {
				if sf, ok := pl.secretFile(n, f.file, v); ok && !seen[sf.rel] {
					seen[sf.rel] = true
					n.secretFiles = append(n.secretFiles, sf)
				}
			}
		case f.env != "":
			name := get(f.env)
			if name == "" || (f.unless != "" && get(f.unless) != "") {
				continue
			}
			if _, set := c.Env[name]; set {
				continue // the file gives its value (env:), in the open
			}
			if secretEnvOf(c, name) {
				continue // a secret of the component sets it (secrets[].env)
			}
			n.secretEnvs = append(n.secretEnvs, secretEnv{field: f.env, name: name, required: f.required != nil && f.required(get)})
		}
	}
}

// secretEnvOf reports whether one of c's secrets is given as variable name.
func secretEnvOf(c *spec.Component, name string) bool {
	for _, s := range c.Secrets {
		if s.Env == name {
			return true
		}
	}
	return false
}

// secretFile decides how the file p of config field reaches the
// container; ok is false when it is not carried.
func (pl *plan) secretFile(n *node, field, p string) (secretFile, bool) {
	c := n.c
	at := "config." + field
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		if !mounted(c, p) && !secretMounted(c, p) {
			pl.warn(c, at, fmt.Sprintf("%s %q reads %s (config.%s), which is in no volume or secret of the component: the container does not have it", c.Role, c.Name, p, field),
				"use a path relative to the pipeline file (translate mounts it read-only as a secret), or give the component `secrets: [{name: ..., host_path: FILE, container_path: "+p+"}]`")
		}
		return secretFile{}, false
	}
	rel := path.Clean(filepath.ToSlash(p))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		pl.warn(c, at, fmt.Sprintf("%s %q reads %s (config.%s), outside the pipeline file's directory: it is not mounted, so the container does not have it", c.Role, c.Name, p, field),
			"keep the file under the pipeline file's directory (translate mounts it read-only as a secret), or give the component a `secrets:` entry with an absolute container_path and name that path in config."+field)
		return secretFile{}, false
	}
	target := path.Join(pipelineDir, rel)
	if mounted(c, target) || secretMounted(c, target) {
		return secretFile{}, false // the component's own volume or secret is there
	}
	if target == pl.pipelinePath() || (pl.opts.TLS && (target == tlsMount || strings.HasPrefix(target, tlsMount+"/"))) {
		pl.warn(c, at, fmt.Sprintf("%s %q reads %s (config.%s), which would be mounted at %s, where the node's own files are: it is not mounted", c.Role, c.Name, p, field, target),
			fmt.Sprintf("move the file out of %s in the pipeline file's directory", strings.TrimPrefix(tlsMount, pipelineDir+"/")))
		return secretFile{}, false
	}
	return secretFile{field: field, rel: rel, target: target}, true
}

// secretMounted reports whether one of c's own secrets is mounted at p
// (container_path, else /run/secrets/NAME, as every target mounts them).
func secretMounted(c *spec.Component, p string) bool {
	for _, s := range c.Secrets {
		target := s.ContainerPath
		if target == "" {
			target = s.Name
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		if target == p {
			return true
		}
	}
	return false
}
