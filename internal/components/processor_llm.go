package components

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/expr"
	"github.com/flowctl/flowctl/internal/flow"
	"github.com/flowctl/flowctl/pkg/backoff"
)

// Defaults of the llm processor, written once here and in its spec.
const (
	llmDefaultURL         = "https://api.openai.com/v1"
	llmDefaultKeyEnv      = "OPENAI_API_KEY"
	llmDefaultOutputField = "llm"
	llmDefaultConcurrency = 4
	llmDefaultTimeout     = 60 * time.Second
	llmDefaultRetries     = 5
	llmDefaultBackoff     = 500 * time.Millisecond
	llmMaxBackoff         = 30 * time.Second
	// llmMaxBody bounds what is read of an answer.
	llmMaxBody = 16 << 20
	// llmCacheFlush is how many answers are gathered before they are
	// written to the cache file in one transaction.
	llmCacheFlush = 32
)

func init() {
	builtins = append(builtins, &flow.ComponentSpec{
		Role:    flow.RoleProcessor,
		Name:    "llm",
		Summary: "Asks an OpenAI-compatible chat completions endpoint about each event and adds the reply to its data (text, or a JSON object constrained by a JSON schema).",
		Delivery: "Events leave in the order they came, whatever the concurrency. Every answer is kept in a response cache (a bbolt file in the pipeline's state directory, keyed by a hash of the model, the messages and the parameters) before the event goes on, " +
			"so events replayed after a crash, or sent again later, are answered from the cache instead of paying for the same prompt twice; only answers received in the last moments before a crash (at most the last 32 per batch) are asked for again. " +
			"429 and 5xx answers and network errors are retried with exponential backoff and jitter, honouring Retry-After; other 4xx answers, and replies that are not the JSON object response_schema asks for, fail the event with the status and the endpoint's message (on_error: the dead-letter output by default).",
		Fields: []flow.Field{
			{Name: "url", Type: flow.TypeString, Default: llmDefaultURL, Example: "http://127.0.0.1:11434/v1", Description: "Base URL of the API: requests go to POST {url}/chat/completions. Any OpenAI-compatible server works (OpenAI, Azure-style gateways, vLLM, Ollama, llama.cpp)."},
			{Name: "model", Type: flow.TypeString, Required: true, Example: "gpt-4o-mini", Description: "The model to ask, sent as is."},
			{Name: "api_key_env", Type: flow.TypeString, Default: llmDefaultKeyEnv, Description: "Environment variable holding the API key, sent as Authorization: Bearer. The key is never logged nor shown. Without a key, requests to a url other than api.openai.com go without Authorization (local servers)."},
			{Name: "api_key_file", Type: flow.TypeString, Example: "/run/secrets/openai", Description: "File holding the API key (a mounted secret); surrounding whitespace is ignored. Takes precedence over api_key_env. Relative to the pipeline file."},
			{Name: "system", Type: flow.TypeCEL, CELResult: "string", Example: `"You label support tickets."`, Description: "CEL expression giving the system message (optional)."},
			{Name: "prompt", Type: flow.TypeCEL, CELResult: "string", Required: true, Example: `"Summarise in one line: " + data.text`, Description: "CEL expression over the event giving the user message (use string(x) for numbers)."},
			{Name: "output_field", Type: flow.TypeString, Default: llmDefaultOutputField, Description: "Top-level field of data that receives the reply: its text, or with response_schema the parsed object. Replaces a field of that name."},
			{Name: "response_schema", Type: flow.TypeObject, Example: map[string]any{"type": "object", "properties": map[string]any{"label": map[string]any{"type": "string"}}, "required": []any{"label"}, "additionalProperties": false}, Description: "A JSON Schema (type: object) the reply must follow, sent as response_format {type: json_schema, json_schema: {name, schema, strict: true}}. The reply must then be a JSON object holding the schema's required properties, else the event fails with the reason."},
			{Name: "merge", Type: flow.TypeBool, Default: false, Description: "With response_schema: write the reply's properties as top-level fields of data (replacing same-named ones) instead of under output_field."},
			{Name: "temperature", Type: flow.TypeNumber, Example: 0, Description: "Sampling temperature (0 to 2); not sent when absent. 0 makes answers as repeatable as the model allows."},
			{Name: "max_tokens", Type: flow.TypeInt, Example: 256, Description: "Upper bound of tokens in the reply; not sent when absent."},
			{Name: "concurrency", Type: flow.TypeInt, Default: llmDefaultConcurrency, Description: "Requests in flight at once. Events still leave in input order."},
			{Name: "rate_limit", Type: flow.TypeNumber, Example: 5, Description: "At most this many requests a second (cache hits do not count); no limit when absent."},
			{Name: "timeout", Type: flow.TypeDuration, Default: "60s", Description: "Time allowed for one request, answer included."},
			{Name: "retries", Type: flow.TypeInt, Default: llmDefaultRetries, Description: "Retries of a request that got 429, 5xx or a network error, after the first attempt. When they are spent the event fails (on_error)."},
			{Name: "backoff", Type: flow.TypeDuration, Default: "500ms", Description: "Wait before the first retry, doubling up to 30s, each drawn between half and all of it; a Retry-After header takes precedence."},
			{Name: "cache", Type: flow.TypeBool, Default: true, Description: "Keep answers in a response cache in the pipeline's state directory (llm-cache.<name>.db), so the same request is never paid twice, across restarts. In memory only when the run keeps no state. false asks every time."},
			{Name: "cache_ttl", Type: flow.TypeDuration, Example: "168h", Description: "How long a cached answer is used; older ones are asked again and deleted from the file when the processor opens. Kept for ever when absent. Answers cached before this field existed have no age and count as expired when it is set."},
		},
		Examples: []string{
			"model: gpt-4o-mini\nprompt: '\"Summarise in one line: \" + data.text'",
			"url: ${LLM_URL}\nmodel: llama3.1\nsystem: '\"You label support tickets.\"'\nprompt: 'data.subject + \"\\n\\n\" + data.body'\nresponse_schema:\n  type: object\n  properties:\n    label: {type: string, enum: [bug, billing, other]}\n  required: [label]\n  additionalProperties: false\nmerge: true\ntemperature: 0\nconcurrency: 8\nrate_limit: 5",
		},
		Validate: validateWith(parseLLM),
		New: func(bc flow.BuildContext) (any, error) {
			p, err := parseLLM(bc.Config)
			if err != nil {
				return nil, err
			}
			p.name, p.stateDir = bc.Name, bc.StateDir
			if p.keyFile != "" {
				p.keyFile = ioResolvePath(bc.Dir, p.keyFile)
			}
			p.log = bc.Logger
			if p.log == nil {
				p.log = slog.New(slog.DiscardHandler)
			}
			return p, nil
		},
	})
}

// llmProcessor asks a chat completions endpoint about every event.
//
// A batch is handled by one goroutine per event, at most concurrency of
// them talking to the endpoint at once (a semaphore shared by every
// batch, so parallelism > 1 does not multiply it); each answer lands at
// its event's index, so the output keeps the input's order. Answers go to
// the cache before the batch is returned.
type llmProcessor struct {
	name     string
	stateDir string
	log      *slog.Logger

	endpoint    string // {url}/chat/completions
	host        string
	model       string
	keyEnv      string
	keyFile     string
	system      *expr.Program // nil: no system message
	prompt      *expr.Program
	outputField string
	schema      map[string]any
	required    []string
	merge       bool
	temperature *float64
	maxTokens   *int
	concurrency int
	timeout     time.Duration
	retries     int
	backoff     backoff.Policy
	useCache    bool
	cacheTTL    time.Duration       // 0: for ever
	now         func() time.Time    // the cache's clock
	limit       *rateLimitProcessor // nil: no rate limit

	// Set by Open.
	key    string
	client *http.Client
	sem    chan struct{}
	cache  llmCache

	requests  atomic.Int64 // HTTP requests sent, retries included
	cacheHits atomic.Int64
}

func parseLLM(cfg flow.Config) (*llmProcessor, error) {
	var errs []error
	p := &llmProcessor{
		keyEnv:      ioCfgString(cfg, "api_key_env", llmDefaultKeyEnv),
		keyFile:     ioCfgString(cfg, "api_key_file", ""),
		outputField: ioCfgString(cfg, "output_field", llmDefaultOutputField),
		merge:       ioCfgBool(cfg, "merge", false),
		useCache:    ioCfgBool(cfg, "cache", true),
		now:         llmClock,
	}
	base := ioCfgString(cfg, "url", llmDefaultURL)
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, ioFieldErr("url", fmt.Sprintf("%q is not an http(s) URL", base), "give the API's base URL, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1"))
	} else {
		p.endpoint = strings.TrimRight(base, "/") + "/chat/completions"
		p.host = u.Hostname()
	}
	if p.model = ioCfgString(cfg, "model", ""); p.model == "" {
		errs = append(errs, ioFieldErr("model", "is required", "name the model to ask, e.g. model: gpt-4o-mini"))
	}
	if p.keyEnv == "" && p.keyFile == "" {
		p.keyEnv = llmDefaultKeyEnv
	}
	if src, ok, err := cfgString(cfg, "system"); err != nil {
		errs = append(errs, err)
	} else if ok && src != "" {
		if p.system, err = compileField("system", src, expr.String); err != nil {
			errs = append(errs, err)
		}
	}
	switch src, ok, err := cfgString(cfg, "prompt"); {
	case err != nil:
		errs = append(errs, err)
	case !ok || src == "":
		errs = append(errs, fieldErr("prompt", "is required", `give a CEL expression building the question, e.g. prompt: '"Summarise: " + data.text'`))
	default:
		if p.prompt, err = compileField("prompt", src, expr.String); err != nil {
			errs = append(errs, err)
		}
	}
	if p.outputField == "" {
		errs = append(errs, ioFieldErr("output_field", "is empty", "name the field that receives the reply, e.g. output_field: summary"))
	}
	schema, err := cfgObject(cfg, "response_schema")
	if err != nil {
		errs = append(errs, err)
	} else if schema != nil {
		if t, _ := schema["type"].(string); t != "object" {
			errs = append(errs, ioFieldErr("response_schema.type", fmt.Sprintf("must be object, got %v", schema["type"]), "the reply is merged into data, so it must be an object: response_schema: {type: object, properties: {...}, required: [...]}"))
		}
		if _, err := json.Marshal(schema); err != nil {
			errs = append(errs, ioFieldErr("response_schema", "cannot be written as JSON: "+err.Error(), "write it as plain YAML maps and lists"))
		}
		if req, _ := schema["required"].([]any); req != nil {
			for _, r := range req {
				if s, ok := r.(string); ok {
					p.required = append(p.required, s)
				}
			}
		}
		p.schema = schema
	}
	if p.merge && p.schema == nil {
		errs = append(errs, ioFieldErr("merge", "needs response_schema", "merge writes the properties of a JSON reply into data; give response_schema, or remove merge to put the text in output_field"))
	}
	if cfg["temperature"] != nil {
		t, err := cfgNumber(cfg, "temperature", 0)
		switch {
		case err != nil:
			errs = append(errs, err)
		case t < 0 || t > 2:
			errs = append(errs, fieldErr("temperature", fmt.Sprintf("must be between 0 and 2, got %v", t), "0 for the most repeatable answers"))
		default:
			p.temperature = &t
		}
	}
	if cfg["max_tokens"] != nil {
		n, err := cfgInt(cfg, "max_tokens", 0)
		switch {
		case err != nil:
			errs = append(errs, err)
		case n < 1:
			errs = append(errs, fieldErr("max_tokens", fmt.Sprintf("must be at least 1, got %d", n), "leave it out for the model's limit"))
		default:
			p.maxTokens = &n
		}
	}
	if p.concurrency, err = cfgInt(cfg, "concurrency", llmDefaultConcurrency); err != nil {
		errs = append(errs, err)
	} else if p.concurrency < 1 || p.concurrency > 1024 {
		errs = append(errs, fieldErr("concurrency", fmt.Sprintf("must be between 1 and 1024, got %d", p.concurrency), fmt.Sprintf("requests in flight at once, e.g. %d", llmDefaultConcurrency)))
	}
	if cfg["rate_limit"] != nil {
		r, err := cfgNumber(cfg, "rate_limit", 0)
		switch {
		case err != nil:
			errs = append(errs, err)
		case r <= 0:
			errs = append(errs, fieldErr("rate_limit", fmt.Sprintf("must be greater than 0, got %v", r), "requests per second, e.g. rate_limit: 5; leave it out for no limit"))
		default:
			// A burst of one spaces the requests evenly.
			p.limit = &rateLimitProcessor{rate: r, burst: 1, tokens: 1}
		}
	}
	if p.cacheTTL, err = ioCfgDuration(cfg, "cache_ttl", 0); err != nil {
		errs = append(errs, err)
	} else if _, set := cfg["cache_ttl"]; set && p.cacheTTL < time.Second {
		errs = append(errs, fieldErr("cache_ttl", "must be at least 1s", "e.g. cache_ttl: 168h (a week); leave it out to keep answers for ever"))
	}
	if p.timeout, err = ioCfgDuration(cfg, "timeout", llmDefaultTimeout); err != nil {
		errs = append(errs, err)
	} else if p.timeout <= 0 {
		errs = append(errs, fieldErr("timeout", "must be greater than 0", "e.g. timeout: 60s"))
	}
	if p.retries, err = cfgInt(cfg, "retries", llmDefaultRetries); err != nil {
		errs = append(errs, err)
	} else if p.retries < 0 {
		errs = append(errs, fieldErr("retries", fmt.Sprintf("must be 0 or more, got %d", p.retries), "0 fails the event at the first 429 or 5xx"))
	}
	b, err := ioCfgDuration(cfg, "backoff", llmDefaultBackoff)
	if err != nil {
		errs = append(errs, err)
	} else if b <= 0 {
		errs = append(errs, fieldErr("backoff", "must be greater than 0", "e.g. backoff: 500ms"))
	}
	p.backoff = backoff.Policy{Base: b, Max: max(b, llmMaxBackoff), Jitter: backoff.DefaultJitter}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// llmClock is the response cache's clock (tests move it).
var llmClock = time.Now

// Open reads the API key and opens the response cache. It fails, naming
// the variable or file, when the key is missing for api.openai.com.
func (p *llmProcessor) Open(_ context.Context) error {
	switch {
	case p.keyFile != "":
		b, err := os.ReadFile(p.keyFile)
		if err != nil {
			return fmt.Errorf("llm %q: read the API key from api_key_file: %w", p.name, err)
		}
		p.key = strings.TrimSpace(string(b))
		if p.key == "" {
			return fmt.Errorf("llm %q: api_key_file %s is empty; put the API key in it", p.name, p.keyFile)
		}
	default:
		p.key = strings.TrimSpace(os.Getenv(p.keyEnv))
	}
	if p.key == "" {
		if p.host == "api.openai.com" {
			return fmt.Errorf("llm %q: no API key: environment variable %s is not set; export it (or set config.api_key_env to the variable that holds the key, or config.api_key_file to a file)", p.name, p.keyEnv)
		}
		p.log.Info("llm: no API key, sending requests without Authorization", "variable", p.keyEnv, "endpoint", p.endpoint)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = p.concurrency
	p.client = &http.Client{Transport: tr}
	p.sem = make(chan struct{}, p.concurrency)
	if !p.useCache {
		return nil
	}
	exp := llmExpiry{ttl: p.cacheTTL, now: p.now}
	if p.stateDir == "" {
		p.cache = &llmMemCache{llmExpiry: exp, m: map[string]llmMemEntry{}}
		p.log.Info("llm: this run keeps no state, so the response cache is in memory only")
		return nil
	}
	c, pruned, err := openLLMBoltCache(llmCachePath(p.stateDir, p.name), exp)
	if err != nil {
		return fmt.Errorf("llm %q: response cache: %w", p.name, err)
	}
	if pruned > 0 {
		p.log.Info("llm: deleted cached answers older than cache_ttl", "answers", pruned, "cache_ttl", p.cacheTTL)
	}
	p.cache = c
	return nil
}

// Close flushes and closes the cache and says what the run cost.
func (p *llmProcessor) Close(_ context.Context) error {
	p.log.Info("llm: done", "requests", p.requests.Load(), "cache_hits", p.cacheHits.Load())
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
	if p.cache != nil {
		err := p.cache.close()
		p.cache = nil
		return err
	}
	return nil
}

// Process asks about one event.
func (p *llmProcessor) Process(ctx context.Context, in *flow.Event, out []*flow.Event) ([]*flow.Event, error) {
	ev, err := p.handle(ctx, in)
	if p.cache != nil {
		if ferr := p.cache.flush(); ferr != nil {
			return out, ferr
		}
	}
	if err != nil {
		return out, err
	}
	return append(out, ev), nil
}

// ProcessBatch asks about every event of in, up to concurrency at once,
// and returns the answers in input order once they are all in the cache.
func (p *llmProcessor) ProcessBatch(ctx context.Context, in []*flow.Event) ([][]*flow.Event, map[int]error, error) {
	outs := make([][]*flow.Event, len(in))
	errs := make([]error, len(in))
	var wg sync.WaitGroup
	for i, ev := range in {
		wg.Go(func() {
			out, err := p.handle(ctx, ev)
			if err != nil {
				errs[i] = err
				return
			}
			outs[i] = []*flow.Event{out}
		})
	}
	wg.Wait()
	if p.cache != nil {
		if err := p.cache.flush(); err != nil {
			return nil, nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var failures map[int]error
	for i, err := range errs {
		if err != nil {
			if failures == nil {
				failures = map[int]error{}
			}
			failures[i] = err
		}
	}
	return outs, failures, nil
}

// llmMessage and llmRequest are the request body of chat completions.
type llmMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type llmJSONSchema struct {
	Name   string         `json:"name"`
	Schema map[string]any `json:"schema"`
	Strict bool           `json:"strict"`
}

type llmResponseFormat struct {
	Type       string         `json:"type"`
	JSONSchema *llmJSONSchema `json:"json_schema,omitempty"`
}

type llmRequest struct {
	Model          string             `json:"model"`
	Messages       []llmMessage       `json:"messages"`
	Temperature    *float64           `json:"temperature,omitempty"`
	MaxTokens      *int               `json:"max_tokens,omitempty"`
	ResponseFormat *llmResponseFormat `json:"response_format,omitempty"`
}

// llmResponse is the part of an answer the processor reads.
type llmResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

// handle builds the request for in, gets its answer (cache, else the
// endpoint) and returns the new event.
func (p *llmProcessor) handle(ctx context.Context, in *flow.Event) (*flow.Event, error) {
	req := llmRequest{Model: p.model, Temperature: p.temperature, MaxTokens: p.maxTokens}
	if p.system != nil {
		s, err := p.evalString(p.system, in)
		if err != nil {
			return nil, fmt.Errorf("system: %w", err)
		}
		req.Messages = append(req.Messages, llmMessage{Role: "system", Content: s})
	}
	prompt, err := p.evalString(p.prompt, in)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	req.Messages = append(req.Messages, llmMessage{Role: "user", Content: prompt})
	if p.schema != nil {
		req.ResponseFormat = &llmResponseFormat{Type: "json_schema", JSONSchema: &llmJSONSchema{Name: "flowctl_" + llmSchemaName(p.name), Schema: p.schema, Strict: true}}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: build the request: %v", flow.ErrPermanent, err)
	}
	sum := sha256.Sum256(body)
	key := hex.EncodeToString(sum[:])
	content, hit := "", false
	if p.cache != nil {
		if content, hit, err = p.cache.get(key); err != nil {
			return nil, err
		}
	}
	if hit {
		p.cacheHits.Add(1)
	} else {
		if content, err = p.ask(ctx, body); err != nil {
			return nil, err
		}
		if p.cache != nil {
			if err := p.cache.put(key, content); err != nil {
				return nil, err
			}
		}
	}
	data, err := p.merged(in, content)
	if err != nil {
		return nil, err
	}
	return in.WithData(data), nil
}

func (p *llmProcessor) evalString(prg *expr.Program, in *flow.Event) (string, error) {
	v, err := prg.Eval(in)
	if err != nil {
		return "", err
	}
	s, ok := v.Value().(string)
	if !ok {
		return "", fmt.Errorf("expression %s gave %T, not a string", prg.Source(), v.Value())
	}
	return s, nil
}

// ask sends body, retrying 429, 5xx and network errors, and returns the
// reply's content. The API key travels only in the header: no error or
// log line carries it.
func (p *llmProcessor) ask(ctx context.Context, body []byte) (string, error) {
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	var last error
	for attempt := 0; ; attempt++ {
		if p.limit != nil {
			if wait := p.limit.reserve(time.Now()); wait > 0 {
				if err := llmSleep(ctx, wait); err != nil {
					p.limit.unreserve()
					return "", err
				}
			}
		}
		content, retryAfter, err := p.attempt(ctx, body)
		if err == nil {
			return content, nil
		}
		if errors.Is(err, flow.ErrPermanent) || ctx.Err() != nil {
			return "", err
		}
		last = err
		if attempt >= p.retries {
			return "", fmt.Errorf("%w (gave up after %d attempts; raise config.retries or lower concurrency/rate_limit)", last, attempt+1)
		}
		wait := p.backoff.Delay(attempt + 1)
		if retryAfter > 0 {
			wait = retryAfter
		}
		p.log.Debug("llm: retrying", "attempt", attempt+1, "wait", wait, "error", err)
		if err := llmSleep(ctx, wait); err != nil {
			return "", err
		}
	}
}

// attempt is one request. A non-nil error wrapping flow.ErrPermanent must
// not be retried; retryAfter is the endpoint's Retry-After, 0 if none.
func (p *llmProcessor) attempt(ctx context.Context, body []byte) (content string, retryAfter time.Duration, err error) {
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", 0, fmt.Errorf("%w: %v", flow.ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	p.requests.Add(1)
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, ctx.Err()
		}
		if actx.Err() != nil {
			return "", 0, fmt.Errorf("chat completions at %s: no answer within %s (config.timeout)", p.endpoint, p.timeout)
		}
		return "", 0, fmt.Errorf("chat completions at %s: %v", p.endpoint, llmNetErr(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, llmMaxBody))
	if err != nil {
		return "", 0, fmt.Errorf("chat completions at %s: read the answer: %v", p.endpoint, llmNetErr(err))
	}
	if resp.StatusCode/100 != 2 {
		msg := llmAPIError(raw)
		e := fmt.Errorf("chat completions at %s answered %s: %s", p.endpoint, resp.Status, msg)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			ra, _ := ioParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			return "", ra, e
		}
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = fmt.Sprintf(" — check the API key (config.api_key_env: %s, or config.api_key_file)", p.keyEnv)
		case http.StatusNotFound:
			hint = " — check config.url (the base URL, ending in /v1 for most servers) and config.model"
		}
		return "", 0, fmt.Errorf("%w: %w%s", flow.ErrPermanent, e, hint)
	}
	var r llmResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", 0, fmt.Errorf("%w: chat completions at %s: the answer is not a chat completion: %v", flow.ErrPermanent, p.endpoint, err)
	}
	if len(r.Choices) == 0 {
		return "", 0, fmt.Errorf("%w: chat completions at %s: the answer has no choices", flow.ErrPermanent, p.endpoint)
	}
	m := r.Choices[0].Message
	if m.Refusal != nil && *m.Refusal != "" {
		return "", 0, fmt.Errorf("%w: the model refused: %s", flow.ErrPermanent, *m.Refusal)
	}
	if m.Content == nil {
		return "", 0, fmt.Errorf("%w: chat completions at %s: the answer has no message content (finish_reason %q)", flow.ErrPermanent, p.endpoint, r.Choices[0].FinishReason)
	}
	return *m.Content, 0, nil
}

// merged returns in's data with the reply added.
func (p *llmProcessor) merged(in *flow.Event, content string) ([]byte, error) {
	v, err := in.Value()
	if err != nil {
		return nil, fmt.Errorf("%w: event data: %v", flow.ErrPermanent, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: event data is %s, not a JSON object, so it cannot hold the reply in %q", flow.ErrPermanent, flow.JSONKind(v), p.outputField)
	}
	out := make(map[string]any, len(obj)+1)
	for k, v := range obj {
		out[k] = v
	}
	if p.schema == nil {
		out[p.outputField] = content
	} else {
		var reply any
		if err := json.Unmarshal([]byte(content), &reply); err != nil {
			return nil, fmt.Errorf("%w: the reply is not valid JSON (%v): %s", flow.ErrPermanent, err, llmShort(content))
		}
		robj, ok := reply.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: the reply is %s, not the JSON object response_schema asks for: %s", flow.ErrPermanent, flow.JSONKind(reply), llmShort(content))
		}
		for _, k := range p.required {
			if _, ok := robj[k]; !ok {
				return nil, fmt.Errorf("%w: the reply lacks %q, required by response_schema: %s", flow.ErrPermanent, k, llmShort(content))
			}
		}
		if p.merge {
			for k, v := range robj {
				out[k] = v
			}
		} else {
			out[p.outputField] = robj
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("%w: write the event: %v", flow.ErrPermanent, err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// llmAPIError is the message of an OpenAI-style error body, or the start
// of the body.
func llmAPIError(raw []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return "(empty body)"
	}
	return llmShort(string(raw))
}

// llmNetErr drops the *url.Error wrapper, whose text repeats the method
// and URL the message already names.
func llmNetErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func llmShort(s string) string {
	const limit = 200
	s = strings.TrimSpace(s)
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}

// llmSchemaName makes a component name fit json_schema.name
// ([a-zA-Z0-9_-], at most 64 characters).
func llmSchemaName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 55)])
}

func llmSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(min(d, time.Duration(math.MaxInt64)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	_ flow.BatchProcessor = (*llmProcessor)(nil)
	_ flow.Opener         = (*llmProcessor)(nil)
	_ flow.Closer         = (*llmProcessor)(nil)
)
