package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowctl/flowctl/internal/flow"
)

// SchemaDialect is the JSON Schema draft Schema writes.
const SchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// Schema returns a JSON Schema (draft 2020-12) of the whole pipeline file —
// the flat form, the flowctl/v1 envelope and the earlier flowctl's legacy
// shape (so an editor opening such a file sees no false errors) —
// generated from the built-in
// specs in reg, so an editor can complete and check a file before flowctl
// sees it. The output is indented and its keys keep a fixed order, so it
// is the same bytes for the same registry.
//
// A schema catches what a document's shape shows: unknown fields, wrong
// types, bad enum values, an unknown built-in, a built-in's config that
// does not fit its spec. It cannot see what needs the whole graph (unknown
// inputs, cycles) or the built-ins' own checks (CEL that does not compile);
// `flowctl validate` reports those. It sees the file after `${VAR}`
// substitution, as flowctl does.
func Schema(reg *flow.Registry) ([]byte, error) {
	var specs []*flow.ComponentSpec
	if reg != nil {
		specs = reg.All()
	}
	defs := obj(
		"flat", flatSchema(),
		"envelope", envelopeSchema(),
		"legacy", legacySchema(),
		"legacySource", legacyEndSchema(flow.RoleSource, specs),
		"legacyProcessor", legacyProcessorSchema(specs),
		"legacySink", legacyEndSchema(flow.RoleSink, specs),
		"metadata", metadataSchema(),
		"envelopeSpec", envelopeSpecSchema(),
		"pipelineRef", pipelineRefSchema(),
		"envelopePipelineRef", envelopePipelineRefSchema(),
		"flatOnly", flatOnlySchema(),
		"component", componentSchema(),
		"source", roleSchema(flow.RoleSource, specs),
		"processor", roleSchema(flow.RoleProcessor, specs),
		"sink", roleSchema(flow.RoleSink, specs),
		"deadLetter", deadLetterSchema(specs),
		"input", inputSchema(),
		"builtin", obj(
			"description", "A component run by a built-in: type without image or command.",
			"required", []string{"type"},
			"not", obj("anyOf", []any{obj("required", []string{"image"}), obj("required", []string{"command"})}),
		),
		"flatRunner", obj(
			"description", "In the flat form type names a built-in: it cannot be combined with image or command.",
			"not", obj(
				"required", []string{"type"},
				"anyOf", []any{obj("required", []string{"image"}), obj("required", []string{"command"})},
			),
		),
		"onError", onErrorSchema(),
		"duration", obj(
			"description", "A Go duration: a number with a unit (ns, us, ms, s, m, h), such as 250ms, 10s or 1h30m.",
			"type", "string",
			"pattern", durationPattern,
			"examples", []any{"100ms", "10s", "1m30s"},
		),
		"stringList", obj(
			"type", "array",
			"items", obj("type", "string"),
		),
		"stringOrList", obj(
			"description", "One string, or a list of them.",
			"oneOf", []any{obj("type", "string"), obj("type", "array", "items", obj("type", "string"))},
		),
		"stringMap", obj(
			"description", "Names to values; scalar values are taken as written.",
			"type", "object",
			"additionalProperties", obj("type", []string{"string", "number", "boolean"}),
		),
	)
	for _, s := range specs {
		cfg, err := configSchema(s)
		if err != nil {
			return nil, err
		}
		defs = append(defs, member{"config." + s.ID(), cfg})
	}
	root := obj(
		"$schema", SchemaDialect,
		"title", "flowctl pipeline file",
		"description", "A flowctl pipeline: sources, processors and sinks wired by their inputs. Written flat (canonical) or in the flowctl/v1 envelope (apiVersion, kind, metadata, spec), which wraps the same fields; the earlier flowctl's legacy shape (source, processors with plugin, sink) is read too.",
		"oneOf", []any{ref("flat"), ref("envelope"), ref("legacy")},
		"$defs", defs,
	)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Descriptions hold "<", ">" and "&"; they are not HTML.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode the JSON schema: %w", err)
	}
	return buf.Bytes(), nil
}

// durationPattern matches what time.ParseDuration accepts.
const durationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// member is one key of an object; object keeps its members in the order
// written, so the schema reads top-down (type, then properties) and is
// byte-for-byte stable.
type member struct {
	key string
	val any
}

type object []member

// obj builds an object from alternating keys and values.
func obj(kv ...any) object {
	o := make(object, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		o = append(o, member{kv[i].(string), kv[i+1]})
	}
	return o
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeJSON(&b, m.key); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := writeJSON(&b, m.val); err != nil {
			return nil, fmt.Errorf("%s: %w", m.key, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeJSON appends v without escaping <, > and & (the schema is not
// embedded in HTML, and descriptions read better as written).
func writeJSON(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode ends with a newline
	return nil
}

func ref(def string) object { return obj("$ref", "#/$defs/"+def) }

func describe(desc string, o object) object { return append(obj("description", desc), o...) }

func enumOf(desc string, values ...string) object {
	return obj("description", desc, "type", "string", "enum", values)
}

func flatSchema() object {
	return obj(
		"description", "The flat form (canonical).",
		"type", "object",
		"properties", obj(
			"name", obj("description", "The pipeline's name.", "type", "string", "minLength", 1),
			"description", obj("description", "What the pipeline is for.", "type", "string"),
			"sources", flatList("source", "Components that produce events; they have no inputs."),
			"processors", flatList("processor", "Components that transform events; each reads from its inputs."),
			"sinks", flatList("sink", "Components that write events out; each reads from its inputs."),
			"dead_letter", obj("allOf", []any{ref("deadLetter"), ref("flatRunner")}),
			"driver", driverSchema(),
			"pipelines", pipelinesSchema(),
			"config", pipelineConfigSchema(),
			"tests", testsSchema(),
		),
		"required", []string{"name"},
		"additionalProperties", false,
	)
}

// testsSchema is the pipeline tests a file may carry; flowctl test checks
// the cases themselves (docs/testing.md).
func testsSchema() object {
	return obj(
		"description", "Pipeline tests of this file, run by flowctl test: cases with name, inputs, expect, dead_letters (see docs/testing.md). Ignored by run, validate and translate.",
		"type", []string{"array", "null"},
		"items", obj("type", "object"),
	)
}

// flatList is a component list of the flat form, where `type` always
// names a built-in and so cannot sit next to image or command (in the
// envelope it is a free label there).
func flatList(def, desc string) object {
	rules := []any{ref(def), ref("flatRunner"), ref("flatOnly")}
	if def != "source" {
		// The envelope chains a file without inputs in file order; the
		// flat form wants them written.
		rules = append(rules, obj("required", []string{"inputs"}, "properties", obj("inputs", obj("minItems", 1))))
	} else {
		// The envelope takes the earlier format's `inputs: []` on a
		// source; the flat form takes no inputs there at all.
		rules = append(rules, obj("properties", obj("inputs", false)))
	}
	return obj("description", desc, "type", "array", "items", obj("allOf", rules))
}

// flatOnlySchema keeps the earlier format's camelCase spellings out of the
// flat form, which stays strict.
func flatOnlySchema() object {
	notAliases := func(m map[string]string) object {
		return obj("propertyNames", obj("not", obj("enum", sortedKeys(m))))
	}
	return obj(
		"description", "The flat form takes only flowctl's own spellings; camelCase aliases are read in the flowctl/v1 envelope.",
		"allOf", []any{notAliases(compatAliases)},
		"properties", obj(
			"volumes", obj("items", notAliases(compatPathAliases)),
			"secrets", obj("items", notAliases(compatPathAliases)),
		),
	)
}

func driverSchema() object {
	return enumOf("What the earlier format ran components with; kept for the translators.",
		"process", "container", "docker", "kubernetes", "k8s", "nomad", "local")
}

func pipelinesSchema() object {
	return obj(
		"description", "Sub-pipelines of the earlier format, ordered by depends_on.",
		"type", "array",
		"items", ref("pipelineRef"),
	)
}

func pipelineConfigSchema() object {
	return obj("description", "Pipeline-level settings of the earlier format, kept as written.", "type", "object")
}

func componentList(def, desc string) object {
	return obj("description", desc, "type", "array", "items", ref(def))
}

func envelopeSchema() object {
	return obj(
		"description", "The flowctl/v1 envelope of the earlier format; spec holds the same fields as the flat form.",
		"type", "object",
		"properties", obj(
			"apiVersion", obj("description", "flowctl/v1; v1 is read as flowctl/v1, with a warning.", "enum", []string{"flowctl/v1", "v1"}),
			"kind", obj("const", "Pipeline"),
			"metadata", ref("metadata"),
			"spec", ref("envelopeSpec"),
			"tests", testsSchema(),
		),
		"required", []string{"apiVersion", "kind", "metadata", "spec"},
		"additionalProperties", false,
	)
}

// legacySchema is the earlier flowctl's legacy shape: one source,
// processors chained in file order, one sink.
func legacySchema() object {
	return obj(
		"description", "The legacy shape of the earlier flowctl: one source, processors each reading from the one above it (the first from the source), one sink reading from the last. Read into the same pipeline as the flat form.",
		"type", "object",
		"properties", obj(
			"version", obj("description", "The earlier format's version; read, not used.", "type", []string{"string", "number", "boolean", "null"}),
			"name", obj("description", "The pipeline's name [the file's base name without extension].", "type", "string", "minLength", 1),
			"source", ref("legacySource"),
			"processors", obj("description", "Processors in the order events pass through them.", "type", "array", "items", ref("legacyProcessor")),
			"sink", describe("The pipeline's one sink; without it the events are not written anywhere (a warning).", ref("legacySink")),
			"log_level", obj("description", "The earlier flowctl's log level; ignored with a warning (flowctl's comes from --log-level)."),
			"tls", obj("description", "The earlier flowctl's control-plane TLS; ignored with a warning (flowctl's comes from its --tls-* flags and client config)."),
		),
		"required", []string{"source"},
		"additionalProperties", false,
	)
}

// legacyEndSchema is the legacy shape's source or sink: a built-in and its
// params.
func legacyEndSchema(role flow.Role, specs []*flow.ComponentSpec) object {
	name := map[flow.Role]string{flow.RoleSource: legacySourceName, flow.RoleSink: legacySinkName}[role]
	return withRules(obj(
		"description", fmt.Sprintf("The pipeline's one %s, a built-in; it is named %q.", role, name),
		"type", "object",
		"properties", obj(
			"type", legacyBuiltinSchema(role, specs),
			"params", obj("description", "The built-in's settings (config in the flat form).", "type", "object"),
		),
		"required", []string{"type"},
		"additionalProperties", false,
	), legacyParamsRules(role, "type", specs))
}

// withRules adds rules as allOf; JSON Schema wants no empty allOf.
func withRules(o object, rules []any) object {
	if len(rules) == 0 {
		return o
	}
	return append(o, member{"allOf", rules})
}

// legacyProcessorSchema is an entry of the legacy shape's processors.
func legacyProcessorSchema(specs []*flow.ComponentSpec) object {
	return withRules(obj(
		"description", "A processor: a built-in (plugin) and its params; it reads from the entry above it.",
		"type", "object",
		"properties", obj(
			"name", obj("description", "The processor's name, unique in the pipeline.", "type", "string", "minLength", 1),
			"plugin", legacyBuiltinSchema(flow.RoleProcessor, specs),
			"params", obj("description", "The built-in's settings (config in the flat form).", "type", "object"),
		),
		"required", []string{"name", "plugin"},
		"additionalProperties", false,
	), legacyParamsRules(flow.RoleProcessor, "plugin", specs))
}

// legacyBuiltinSchema names a built-in of the role.
func legacyBuiltinSchema(role flow.Role, specs []*flow.ComponentSpec) object {
	o := obj("description", fmt.Sprintf("A built-in %s (see `flowctl components`).", role), "type", "string")
	var names []string
	for _, s := range specs {
		if s.Role == role {
			names = append(names, s.Name)
		}
	}
	if len(names) > 0 {
		o = append(o, member{"enum", names})
	}
	return o
}

// legacyParamsRules: params must fit the spec of the built-in that key
// names, and be there when that built-in has required fields.
func legacyParamsRules(role flow.Role, key string, specs []*flow.ComponentSpec) []any {
	var rules []any
	for _, s := range specs {
		if s.Role != role {
			continue
		}
		then := obj("properties", obj("params", ref("config."+s.ID())))
		if hasRequired(s.Fields) {
			then = append(then, member{"required", []string{"params"}})
		}
		rules = append(rules, obj(
			"if", obj("required", []string{key}, "properties", obj(key, obj("const", s.Name))),
			"then", then,
		))
	}
	return rules
}

func metadataSchema() object {
	return obj(
		"type", "object",
		"properties", obj(
			"name", obj("description", "The pipeline's name.", "type", "string", "minLength", 1),
			"namespace", obj("type", "string"),
			"labels", ref("stringMap"),
			"annotations", ref("stringMap"),
			"description", obj("type", "string"),
		),
		"required", []string{"name"},
		"additionalProperties", false,
	)
}

func envelopeSpecSchema() object {
	return obj(
		"type", "object",
		"properties", obj(
			"description", obj("description", "What the pipeline is for.", "type", "string"),
			"driver", enumOf("What the earlier flowctl ran components with; accepted with a warning and ignored (a component's type, command or image says what runs it).", compatDrivers...),
			"sources", componentList("source", "Components that produce events; they have no inputs."),
			"processors", componentList("processor", "Components that transform events; each reads from its inputs."),
			"sinks", componentList("sink", "Components that write events out; each reads from its inputs."),
			"dead_letter", ref("deadLetter"),
			"pipelines", obj(
				"description", "Sub-pipelines of the earlier format, ordered by depends_on. An entry with component fields (image, command, ...) is a service that moves its data itself; flowctl run does not start it.",
				"type", "array",
				"items", ref("envelopePipelineRef"),
			),
			"config", pipelineConfigSchema(),
		),
		"additionalProperties", false,
	)
}

// envelopePipelineRefSchema is an entry of the envelope's spec.pipelines:
// a name (or id) with depends_on, and optionally the component fields.
func envelopePipelineRefSchema() object {
	return obj("$ref", "#/$defs/component", "description", "A sub-pipeline: name (or id), depends_on, and optionally the component fields of a service that moves its data itself.")
}

func pipelineRefSchema() object {
	return obj(
		"type", "object",
		"properties", obj(
			"name", obj("type", "string"),
			"id", obj("type", "string"),
			"depends_on", describe("Pipelines that must run before this one.", ref("stringOrList")),
		),
		"additionalProperties", false,
	)
}

// componentSchema holds every field a component may have, whatever its
// role; the role schemas add what differs.
func componentSchema() object {
	return obj(
		"type", "object",
		"properties", obj(
			"name", obj("description", "The component's name, unique in the pipeline; inputs refer to it. `id` is the same field.", "type", "string", "minLength", 1),
			"id", obj("description", "The earlier format's spelling of name.", "type", "string", "minLength", 1),
			"type", obj("description", "The built-in that runs in-process (see `flowctl components`), or a published component run as a local process: NAME@VERSION, ORG/NAME@VERSION or HOST/ORG/NAME:VERSION (see docs/components.md). Next to image or command it is a free label, kept as written.", "type", "string"),
			"image", obj("description", "A container image that runs the component.", "type", "string"),
			"command", describe("A local program that runs the component (program and arguments), or the entrypoint of its image.", ref("stringOrList")),
			"args", describe("Arguments after command: a list, or one string split like a shell.", ref("stringOrList")),
			"inputs", obj(
				"description", "The components this one reads from: names, or {from, types} to take only some event types. One name may be written without the list.",
				"oneOf", []any{
					obj("type", "string", "minLength", 1),
					obj("type", "array", "items", ref("input")),
				},
			),
			"input_event_types", describe("The event types taken from the inputs (earlier format).", ref("stringList")),
			"output_event_types", describe("The event types the component emits (earlier format).", ref("stringList")),
			"config", obj("description", "The component's own settings; a built-in's spec defines them.", "type", "object"),
			"env", describe("Environment variables of the process or container.", ref("stringMap")),
			"working_dir", obj("description", "The directory the process starts in.", "type", "string"),
			"build", describe("flowctl run --watch only: the command that builds the program of a component run by `command` (a list, or one string split like a shell), run in the pipeline's directory before the component starts and whenever a `watch` file changes. Needs watch; plain flowctl run and the translators ignore it.", ref("stringOrList")),
			"watch", describe("flowctl run --watch only: globs of the sources `build` builds, relative to the pipeline's directory (`**` matches any number of directories). Needs build.", ref("stringOrList")),
			"buffer", obj("description", "Capacity of each input queue, in events.", "type", "integer", "minimum", 1, "default", 1024),
			"parallelism", obj("description", "Workers of a processor.", "type", "integer", "minimum", 1, "default", 1),
			"ordered", obj("description", "With parallelism > 1, keep the input order.", "type", "boolean", "default", true),
			"on_error", ref("onError"),
			"protocol", enumOf("How flowctl talks to a command or image component: auto tries flowctl's gRPC, then the earlier flowctl.v1 services; none: the component moves its data itself and flowctl only starts, registers and watches it.",
				"auto", "grpc", "flowctl-v1", "stdio", "http", "none"),
			"url", obj("description", "The address of an existing HTTP component.", "type", "string"),
			"startup_timeout", describe("How long a process or container may take to become ready [10s].", ref("duration")),
			"stop_grace", describe("How long a process or container may take to stop before it is killed [10s].", ref("duration")),
			"restart_policy", enumOf("When a process or container is started again [on-failure]; unless-stopped means always here.",
				"no", "on-failure", "always", "unless-stopped"),
			"ports", obj("description", "Container ports.", "type", "array", "items", obj(
				"type", "object",
				"properties", obj(
					"name", obj("type", "string"),
					"containerPort", obj("type", "integer", "minimum", 1, "maximum", 65535),
					"hostPort", obj("type", "integer", "minimum", 0, "maximum", 65535),
					"container_port", obj("description", "Same as containerPort.", "type", "integer", "minimum", 1, "maximum", 65535),
					"host_port", obj("description", "Same as hostPort.", "type", "integer", "minimum", 0, "maximum", 65535),
					"protocol", obj("type", "string", "examples", []string{"TCP", "UDP"}),
				),
				"additionalProperties", false,
			)),
			"volumes", obj("description", "Container mounts.", "type", "array", "items", obj(
				"type", "object",
				"properties", obj(
					"name", obj("type", "string"),
					"mountPath", obj("type", "string"),
					"mount_path", obj("description", "Same as mountPath.", "type", "string"),
					"host_path", obj("type", "string"),
					"container_path", obj("type", "string"),
					"readonly", obj("type", "boolean"),
					"read_only", obj("description", "Same as readonly.", "type", "boolean"),
					"hostPath", obj("description", "flowctl/v1 envelope only: same as host_path.", "type", "string"),
					"containerPath", obj("description", "flowctl/v1 envelope only: same as container_path.", "type", "string"),
					"readOnly", obj("description", "flowctl/v1 envelope only: same as readonly.", "type", "boolean"),
				),
				"additionalProperties", false,
			)),
			"secrets", obj("description", "Secrets given to the component.", "type", "array", "items", obj(
				"type", "object",
				"properties", obj(
					"name", obj("type", "string"),
					"host_path", obj("type", "string"),
					"container_path", obj("type", "string"),
					"hostPath", obj("description", "flowctl/v1 envelope only: same as host_path.", "type", "string"),
					"containerPath", obj("description", "flowctl/v1 envelope only: same as container_path.", "type", "string"),
					"env", obj("type", "string"),
					"mode", obj("type", "string"),
					"type", obj("type", "string"),
					"required", obj("type", "boolean"),
					"labels", ref("stringMap"),
				),
				"additionalProperties", false,
			)),
			"resources", obj("description", "Container resource requests and limits.", "type", "object",
				"properties", obj("requests", resourceList(), "limits", resourceList()),
				"additionalProperties", false,
			),
			"replicas", obj("description", "Copies of the container (translators).", "type", "integer", "minimum", 0),
			"health_check", obj("description", "Health check path or URL.", "type", "string"),
			"health_port", obj("description", "Port of the health check.", "type", "integer", "minimum", 1, "maximum", 65535),
			"depends_on", describe("Components started before this one.", ref("stringOrList")),
			"inputEventTypes", describe("flowctl/v1 envelope only: the earlier format's camelCase spelling of input_event_types.", ref("stringList")),
			"outputEventTypes", describe("flowctl/v1 envelope only: the earlier format's camelCase spelling of output_event_types.", ref("stringList")),
			"healthCheck", obj("description", "flowctl/v1 envelope only: the earlier format's camelCase spelling of health_check.", "type", "string"),
			"healthPort", obj("description", "flowctl/v1 envelope only: the earlier format's camelCase spelling of health_port.", "type", "integer", "minimum", 1, "maximum", 65535),
			"restartPolicy", enumOf("flowctl/v1 envelope only: the earlier format's camelCase spelling of restart_policy.",
				"no", "on-failure", "always", "unless-stopped"),
			"dependsOn", describe("flowctl/v1 envelope only: the earlier format's camelCase spelling of depends_on.", ref("stringOrList")),
		),
		"additionalProperties", false,
	)
}

// sortedKeys are m's keys in order, so the schema is the same bytes each
// time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func resourceList() object {
	quantity := obj("type", []string{"string", "number"})
	return obj("type", "object",
		"properties", obj("cpu", quantity, "memory", quantity),
		"additionalProperties", false,
	)
}

func inputSchema() object {
	return obj(
		"oneOf", []any{
			obj("description", "The name of an upstream component: take every event.", "type", "string", "minLength", 1),
			obj(
				"description", "An upstream component and the event types taken from it.",
				"type", "object",
				"properties", obj(
					"from", obj("type", "string", "minLength", 1),
					"types", ref("stringOrList"),
				),
				"required", []string{"from"},
				"additionalProperties", false,
			),
		},
	)
}

func onErrorSchema() object {
	policies := []string{OnErrorRetry, OnErrorDeadLetter, OnErrorDrop, OnErrorStop}
	return obj(
		"description", "What happens to an event the component fails on. Default: sinks retry for ever (waiting for their endpoint, holding the sources back), then stop if max_attempts is set; processors dead_letter when the pipeline has a dead_letter sink, else drop.",
		"oneOf", []any{
			obj("type", "string", "enum", policies),
			obj(
				"type", "object",
				"properties", obj(
					"policy", obj("type", "string", "enum", policies),
					"max_attempts", obj("description", "Attempts of a retry; 0 retries for ever. Default: 0 for sinks, 3 for processors.", "type", "integer", "minimum", 0),
					"backoff", describe("Wait before the first retry, doubling after each; each wait is drawn between half and all of it (jitter). A Retry-After from an HTTP endpoint takes precedence.", append(ref("duration"), member{"default", "100ms"})),
					"max_backoff", describe("The longest wait between retries.", append(ref("duration"), member{"default", "10s"})),
					"then", obj("description", "What follows exhausted retries.", "type", "string",
						"enum", []string{OnErrorDeadLetter, OnErrorDrop, OnErrorStop}),
				),
				"if", obj("required", []string{"then"}),
				"then", obj("properties", obj("policy", obj(
					"description", "then applies only after retries.",
					"const", OnErrorRetry,
				))),
				"additionalProperties", false,
			),
		},
	)
}

// roleSchema is a source, processor or sink: the common fields, a name (or
// id), something that runs it, inputs as the role demands, and — for each
// built-in of the role — its config schema when `type` names it.
func roleSchema(role flow.Role, specs []*flow.ComponentSpec) object {
	rules := []any{
		obj("oneOf", []any{
			obj("required", []string{"name"}),
			obj("required", []string{"id"}),
		}),
		obj("anyOf", []any{
			obj("required", []string{"type"}),
			obj("required", []string{"image"}),
			obj("required", []string{"command"}),
			obj("required", []string{"url"}),
		}),
	}
	rules = append(rules, builtinRules(role, specs)...)
	o := obj("$ref", "#/$defs/component", "description", fmt.Sprintf("A %s: a built-in (type) or a command, image or url.", role))
	if role == flow.RoleSource {
		// Nothing, or (in the envelope) the earlier format's empty list;
		// flatList forbids the field in the flat form.
		o = append(o, member{"properties", obj("inputs", obj("type", []string{"array", "null"}, "maxItems", 0))})
	}
	// Other roles: required and not empty in the flat form (flatList); the
	// envelope reads `inputs: []` as none and chains a file without inputs
	// in file order.
	return append(o, member{"allOf", rules})
}

func deadLetterSchema(specs []*flow.ComponentSpec) object {
	rules := []any{
		obj("not", obj("required", []string{"name", "id"})),
		obj("anyOf", []any{
			obj("required", []string{"type"}),
			obj("required", []string{"image"}),
			obj("required", []string{"command"}),
			obj("required", []string{"url"}),
		}),
	}
	rules = append(rules, builtinRules(flow.RoleSink, specs)...)
	return obj(
		"$ref", "#/$defs/component",
		"description", "A sink without inputs that receives every failed event, with the error, the component and the attempt count.",
		"properties", obj(
			"inputs", false,
			"on_error", obj(
				"description", "The dead-letter sink cannot send its own failures to itself.",
				"not", obj("anyOf", []any{
					obj("const", OnErrorDeadLetter),
					obj("required", []string{"policy"}, "properties", obj("policy", obj("const", OnErrorDeadLetter))),
					obj("required", []string{"then"}, "properties", obj("then", obj("const", OnErrorDeadLetter))),
				}),
			),
		),
		"allOf", rules,
	)
}

// builtinRules: when type is written without image or command it names a
// built-in of the role, and then config must fit that built-in's spec.
func builtinRules(role flow.Role, specs []*flow.ComponentSpec) []any {
	var names []string
	var rules []any
	for _, s := range specs {
		if s.Role != role {
			continue
		}
		names = append(names, s.Name)
		then := obj("properties", obj("config", ref("config."+s.ID())))
		if hasRequired(s.Fields) {
			then = append(then, member{"required", []string{"config"}})
		}
		rules = append(rules, obj(
			"if", obj("$ref", "#/$defs/builtin", "properties", obj("type", obj("const", s.Name))),
			"then", then,
		))
	}
	if len(names) == 0 {
		// No built-in of the role to name; flowctl validate reports the
		// unknown type.
		return nil
	}
	builtin := obj(
		"if", ref("builtin"),
		"then", obj("properties", obj("type", obj(
			"description", fmt.Sprintf("A built-in %s, or a published component NAME@VERSION, ORG/NAME@VERSION or HOST/ORG/NAME:VERSION.", role),
			"anyOf", []any{obj("enum", names), obj("pattern", "[@/:]")},
		))),
	)
	return append([]any{builtin}, rules...)
}

func hasRequired(fields []flow.Field) bool {
	for _, f := range fields {
		if f.Required {
			return true
		}
	}
	return false
}

// configSchema is the schema of one built-in's config: its fields, closed
// to unknown keys, with the spec's YAML examples decoded as examples.
func configSchema(s *flow.ComponentSpec) (object, error) {
	o, err := objectSchema(s.Fields)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", s.ID(), err)
	}
	o = append(obj("description", fmt.Sprintf("Config of the built-in %s %q: %s", s.Role, s.Name, s.Summary)), o...)
	var examples []any
	for i, y := range s.Examples {
		var v any
		if err := yaml.Unmarshal([]byte(y), &v); err != nil {
			return nil, fmt.Errorf("schema of %s: example %d is not YAML: %w", s.ID(), i+1, err)
		}
		examples = append(examples, jsonable(v))
	}
	if len(examples) > 0 {
		o = append(o, member{"examples", examples})
	}
	return o, nil
}

func objectSchema(fields []flow.Field) (object, error) {
	props := object{}
	var required []string
	for _, f := range fields {
		fs, err := fieldSchema(f)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		props = append(props, member{f.Name, fs})
		if f.Required {
			required = append(required, f.Name)
		}
	}
	o := obj("type", "object", "properties", props)
	if len(required) > 0 {
		o = append(o, member{"required", required})
	}
	return append(o, member{"additionalProperties", false}), nil
}

// fieldSchema maps a config field to JSON Schema.
func fieldSchema(f flow.Field) (object, error) {
	var o object
	if f.Description != "" {
		o = append(o, member{"description", fieldDescription(f)})
	}
	typed, err := typeSchema(f)
	if err != nil {
		return nil, err
	}
	o = append(o, typed...)
	if len(f.Enum) > 0 {
		if f.Type == flow.TypeStrings {
			o = replaceItems(o, obj("type", "string", "enum", f.Enum))
		} else {
			o = append(o, member{"enum", f.Enum})
		}
	}
	if f.Default != nil {
		o = append(o, member{"default", jsonable(f.Default)})
	}
	if f.Example != nil {
		o = append(o, member{"examples", []any{jsonable(f.Example)}})
	}
	return o, nil
}

// fieldDescription adds what a CEL field must return, which the type alone
// does not say.
func fieldDescription(f flow.Field) string {
	if f.Type == flow.TypeCEL {
		result := f.CELResult
		if result == "" {
			result = "any value"
		}
		return fmt.Sprintf("%s (CEL expression returning %s)", strings.TrimSuffix(f.Description, "."), result)
	}
	return f.Description
}

func typeSchema(f flow.Field) (object, error) {
	switch f.Type {
	case flow.TypeString, flow.TypeCEL:
		return obj("type", "string"), nil
	case flow.TypeInt:
		return obj("type", "integer"), nil
	case flow.TypeNumber:
		return obj("type", "number"), nil
	case flow.TypeBool:
		return obj("type", "boolean"), nil
	case flow.TypeDuration:
		return ref("duration"), nil
	case flow.TypeStrings:
		return obj("type", "array", "items", obj("type", "string")), nil
	case flow.TypeObject:
		if len(f.Fields) == 0 {
			return obj("type", "object"), nil
		}
		return objectSchema(f.Fields)
	case flow.TypeArray:
		items := object{}
		if f.Items != nil {
			var err error
			if items, err = fieldSchema(*f.Items); err != nil {
				return nil, fmt.Errorf("items: %w", err)
			}
		}
		return obj("type", "array", "items", items), nil
	case flow.TypeMap:
		values := object{}
		if f.Items != nil {
			var err error
			if values, err = fieldSchema(*f.Items); err != nil {
				return nil, fmt.Errorf("values: %w", err)
			}
		}
		return obj("type", "object", "additionalProperties", values), nil
	case flow.TypeAny, "":
		return object{}, nil
	}
	return nil, fmt.Errorf("unknown field type %q", f.Type)
}

func replaceItems(o object, items object) object {
	for i := range o {
		if o[i].key == "items" {
			o[i].val = items
		}
	}
	return o
}

// jsonable turns a spec's default or example into a JSON value: durations
// as their string form, YAML maps with any keys as string-keyed maps.
func jsonable(v any) any {
	switch v := v.(type) {
	case time.Duration:
		return v.String()
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = jsonable(x)
		}
		return out
	case flow.Config:
		return jsonable(map[string]any(v))
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = jsonable(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonable(x)
		}
		return out
	}
	return v
}
