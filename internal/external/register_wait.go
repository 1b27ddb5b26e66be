package external

import (
	"fmt"
	"strings"

	"github.com/flowctl/flowctl/internal/controlplane"
)

// notRegisteredError is the error of a component that did not register
// within its startup_timeout. It names the ids that did register (or were
// refused) meanwhile, since the usual cause is a component registering
// under another id than FLOWCTL_COMPONENT_ID: the earlier SDK's processors
// register as $SERVICE_ID (basic_processor's default: example-processor-1).
func notRegisteredError(rt *Runtime, inst *Instance, cause error) error {
	var seen []string
	for _, a := range rt.ControlPlane.RegisteredSince(inst.Started) {
		if a.ID == inst.ID {
			continue
		}
		s := fmt.Sprintf("%s (%s", a.ID, protocolLabel(a.Protocol))
		if a.Refused {
			s += ", refused: this run starts no component of that id"
		}
		seen = append(seen, s+")")
	}
	meanwhile := "nothing registered meanwhile"
	fix := fmt.Sprintf("it must register as FLOWCTL_COMPONENT_ID=%s (check that it reads FLOWCTL_ENDPOINT and ENABLE_FLOWCTL=true, and serves on PORT if it serves a stream service)", inst.ID)
	if len(seen) > 0 {
		meanwhile = "registered meanwhile: " + strings.Join(seen, ", ")
		fix = fmt.Sprintf("it must register as FLOWCTL_COMPONENT_ID=%s; a component built with the earlier SDK registers as $SERVICE_ID (basic_processor's default is example-processor-1): set `SERVICE_ID: %s` in its env, or name the component after the id it registers as",
			inst.ID, inst.ID)
	}
	return fmt.Errorf("component %q did not register with the control plane at FLOWCTL_ENDPOINT=%s in time; %s — %s: %w",
		inst.ID, rt.Endpoint, meanwhile, fix, cause)
}

// protocolLabel names the control-plane service of a registration for
// users.
func protocolLabel(p string) string {
	if p == controlplane.ProtocolLegacy {
		return "flowctl.ControlPlane"
	}
	return p
}
