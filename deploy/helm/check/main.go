// Command check reads what deploy/helm/test.sh rendered with helm template from each values file in
// deploy/helm/testdata, decodes every object strictly into the Kubernetes API types (an unknown or duplicate field is
// an error, as under the API server's strict field validation), and checks what the chart promises: the contract's
// environment variables, each secret from the configured Secret and key, probes, the restricted security context,
// replicas, autoscaling, the disruption budget, the Ingress paths and the helm test pod that runs dashauth check.
//
//	go run . -dir <folder with one <values file name>.yaml per values file>
package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// want is what one values file must render to.
type want struct {
	image     string
	secret    string            // the Secret every secretKeyRef names
	env       map[string]string // the plain variables, exactly
	secretEnv map[string]string // variable -> key in the Secret, exactly
	replicas  int32             // the Deployment's replicas; 0: none, the HPA owns them
	hpa       [2]int32          // the HPA's min and max replicas; zero: no HPA
	pdb       bool
	ingress   string // the Ingress host; "": no Ingress
	members   string // the ConfigMap mounted where MEMBERS_FILE points; "": none
	ownCM     bool   // the chart writes that ConfigMap (else the operator manages it)
	grace     int64  // terminationGracePeriodSeconds
	preStop   int64  // seconds of the preStop sleep; 0: none
}

const (
	dashboard = "https://app.yourdomain.com"
	api       = "https://api.yourdomain.com"
	redirects = dashboard + "/en/callback," + dashboard + "/de/callback"
)

// The expectations, one per values file in ../testdata that helm template renders.
var cases = map[string]want{
	"email-code": {
		image:  "dashauth:0.1.0",
		secret: "dashauth-secrets",
		env: env(map[string]string{"IS_WORKOS_INTEGRATED": "false",
			"SMTP_HOST": "smtp.yourdomain.com", "SMTP_FROM": "dashboard@yourdomain.com",
			"MEMBERS_FILE": "/etc/dashauth/members/members.json"}),
		secretEnv: map[string]string{"JWT_SECRET": "jwtSecret"},
		replicas:  1, members: "dashauth-members", ownCM: true, grace: 45, preStop: 5,
	},
	"workos-redis": { // the guide's names: suprsend-secrets, workosApiKey, workosWebhookSecretKey
		image:  "dashauth:0.1.0",
		secret: "suprsend-secrets",
		env: env(map[string]string{"IS_WORKOS_INTEGRATED": "true",
			"WORKOS_CLIENT_ID": "client_01HZY8Q2J3K4M5N6P7Q8R9S0TV", "WORKOS_SIGNIN_BASE_URL": "https://your-app.authkit.app",
			"SMTP_HOST": "smtp.sendgrid.net", "SMTP_PORT": "465", "SMTP_TLS": "tls", "SMTP_USERNAME": "apikey",
			"SMTP_FROM": "no-reply@yourdomain.com", "TRUSTED_PROXIES": "10.0.0.0/8"}),
		secretEnv: map[string]string{"WORKOS_API_KEY": "workosApiKey", "WORKOS_WEBHOOK_SECRET": "workosWebhookSecretKey",
			"JWT_SECRET": "jwtSecret", "SMTP_PASSWORD": "smtpPassword", "REDIS_URL": "redisUrl"},
		hpa: [2]int32{3, 10}, pdb: true, ingress: "api.yourdomain.com", grace: 45, preStop: 5,
	},
	"email-code-options": {
		image:  "registry.yourdomain.com/dashauth:2026.12.1",
		secret: "auth-secrets",
		env: env(map[string]string{"IS_WORKOS_INTEGRATED": "false", "SMTP_HOST": "mail.yourdomain.com",
			"ALLOWED_REDIRECT_URLS": redirects, "SMTP_PORT": "2525", "SMTP_TLS": "starttls", "SMTP_USERNAME": "dashauth",
			"SMTP_FROM": "dashboard@yourdomain.com", "REDIS_KEY_PREFIX": "auth:prod:",
			"MEMBERS_FILE": "/etc/dashauth/members/people.json", "COOKIE_DOMAIN": "yourdomain.com",
			"TRUSTED_PROXIES": "10.0.0.0/8,192.168.0.0/16", "ACCESS_TOKEN_TTL": "10m", "REFRESH_TOKEN_TTL": "72h",
			"REFRESH_REUSE_INTERVAL": "5s", "SESSION_MAX_AGE": "168h", "LOG_LEVEL": "debug"}),
		secretEnv: map[string]string{"JWT_SECRET": "JWT_SECRET", "JWT_SECRET_PREVIOUS": "JWT_SECRET_PREVIOUS",
			"SMTP_PASSWORD": "SMTP_PASSWORD", "REDIS_URL": "REDIS_URL"},
		replicas: 2, pdb: true, members: "dashboard-members", grace: 60,
	},
}

// env adds what every values file sets the same way.
func env(m map[string]string) map[string]string {
	m["LISTEN_ADDR"] = "0.0.0.0:8080"
	m["DASHBOARD_URL"], m["API_URL"] = dashboard, api
	return m
}

// The contract's variables (its configuration table, and LOG_LEVEL), and those that hold secrets.
var (
	contractVars = strings.Fields(`LISTEN_ADDR DASHBOARD_URL API_URL ALLOWED_REDIRECT_URLS IS_WORKOS_INTEGRATED
		WORKOS_CLIENT_ID WORKOS_API_KEY WORKOS_WEBHOOK_SECRET WORKOS_SIGNIN_BASE_URL WORKOS_API_BASE_URL JWT_SECRET
		JWT_SECRET_PREVIOUS ACCESS_TOKEN_TTL REFRESH_TOKEN_TTL REDIS_URL REDIS_KEY_PREFIX SMTP_HOST SMTP_PORT
		SMTP_USERNAME SMTP_PASSWORD SMTP_FROM SMTP_TLS MEMBERS_FILE COOKIE_DOMAIN TRUSTED_PROXIES
		REFRESH_REUSE_INTERVAL SESSION_MAX_AGE LOG_LEVEL`)
	secretVars = strings.Fields(`WORKOS_API_KEY WORKOS_WEBHOOK_SECRET JWT_SECRET JWT_SECRET_PREVIOUS SMTP_PASSWORD
		REDIS_URL`)
)

// The paths the Ingress must route to dashauth, and only those.
var ingressPaths = []string{"/v1/workos_webhook/", "/v2/user/", "/v1/auth_config/"}

// kinds are the objects the chart may render, each decoded into its API type.
var kinds = map[string]func() metav1.Object{
	"v1 ConfigMap":                           func() metav1.Object { return &corev1.ConfigMap{} },
	"v1 Service":                             func() metav1.Object { return &corev1.Service{} },
	"v1 Pod":                                 func() metav1.Object { return &corev1.Pod{} },
	"apps/v1 Deployment":                     func() metav1.Object { return &appsv1.Deployment{} },
	"autoscaling/v2 HorizontalPodAutoscaler": func() metav1.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1 PodDisruptionBudget":          func() metav1.Object { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1 Ingress":           func() metav1.Object { return &networkingv1.Ingress{} },
}

var separator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode splits a helm template output into its objects, each decoded strictly.
func decode(data []byte) ([]metav1.Object, error) {
	var objs []metav1.Object
	seen := map[string]bool{}
	for i, doc := range separator.Split(string(data), -1) {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		} else if string(js) == "null" { // only comments
			continue
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		kind := tm.APIVersion + " " + tm.Kind
		newObj, ok := kinds[kind]
		if !ok {
			return nil, fmt.Errorf("document %d: unexpected kind %q", i, kind)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, kind, err)
		}
		id := kind + " " + obj.GetName()
		if seen[id] {
			return nil, fmt.Errorf("two objects %s", id)
		}
		seen[id] = true
		objs = append(objs, obj)
	}
	return objs, nil
}

func all[T metav1.Object](objs []metav1.Object) []T {
	var out []T
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// checker collects the problems of one case.
type checker struct{ problems []string }

func (c *checker) errorf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// one returns the only object of type T, or nil when there is none and none is wanted.
func one[T metav1.Object](c *checker, objs []metav1.Object, wanted bool) T {
	var zero T
	got := all[T](objs)
	kind := fmt.Sprintf("%T", zero)
	switch {
	case wanted && len(got) == 1:
		return got[0]
	case !wanted && len(got) == 0:
	case wanted:
		c.errorf("%d objects of type %s, want 1", len(got), kind)
	default:
		c.errorf("a %s, want none", kind)
	}
	return zero
}

func check(w want, objs []metav1.Object) []string {
	c := &checker{}
	for _, o := range objs {
		if o.GetNamespace() != "" {
			c.errorf("%s sets namespace %q: helm install -n decides it", o.GetName(), o.GetNamespace())
		}
		if o.GetLabels()["app.kubernetes.io/instance"] == "" {
			c.errorf("%s has no app.kubernetes.io/instance label", o.GetName())
		}
	}
	d := one[*appsv1.Deployment](c, objs, true)
	svc := one[*corev1.Service](c, objs, true)
	test := one[*corev1.Pod](c, objs, true)
	cm := one[*corev1.ConfigMap](c, objs, w.ownCM)
	hpa := one[*autoscalingv2.HorizontalPodAutoscaler](c, objs, w.hpa != [2]int32{})
	pdb := one[*policyv1.PodDisruptionBudget](c, objs, w.pdb)
	ing := one[*networkingv1.Ingress](c, objs, w.ingress != "")
	if d == nil || svc == nil || test == nil {
		return c.problems
	}
	c.deployment(w, d, cm)
	selector := d.Spec.Selector.MatchLabels
	if !maps.Equal(svc.Spec.Selector, selector) {
		c.errorf("the Service selects %v, the Deployment's pods are %v", svc.Spec.Selector, selector)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		c.errorf("Service ports %+v, want one named http to the container's http port", svc.Spec.Ports)
	}
	c.testPod(d, test)
	if selects(selector, test.Labels) {
		c.errorf("the Service and the disruption budget would count the test pod: its labels %v match %v", test.Labels, selector)
	}
	if hpa != nil {
		ref := hpa.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
			c.errorf("the HPA scales %+v, not the Deployment %s", ref, d.Name)
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != w.hpa[0] || hpa.Spec.MaxReplicas != w.hpa[1] {
			c.errorf("the HPA scales %v to %d, want %d to %d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, w.hpa[0], w.hpa[1])
		}
		if len(hpa.Spec.Metrics) == 0 {
			c.errorf("the HPA has no metric")
		}
	}
	if pdb != nil {
		if pdb.Spec.Selector == nil || !maps.Equal(pdb.Spec.Selector.MatchLabels, selector) || len(pdb.Spec.Selector.MatchExpressions) > 0 {
			c.errorf("the disruption budget selects %v, the Deployment's pods are %v", pdb.Spec.Selector, selector)
		}
		if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			c.errorf("the disruption budget sets neither maxUnavailable nor minAvailable")
		}
	}
	if ing != nil {
		c.ingress(w, ing, svc)
	}
	return c.problems
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (c *checker) deployment(w want, d *appsv1.Deployment, cm *corev1.ConfigMap) {
	switch {
	case w.replicas == 0 && d.Spec.Replicas != nil:
		c.errorf("the Deployment sets replicas %d: the HPA owns them", *d.Spec.Replicas)
	case w.replicas != 0 && (d.Spec.Replicas == nil || *d.Spec.Replicas != w.replicas):
		c.errorf("replicas %v, want %d", d.Spec.Replicas, w.replicas)
	}
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 || len(d.Spec.Selector.MatchExpressions) > 0 ||
		!selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		c.errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	spec := d.Spec.Template.Spec
	c.podSecurity(spec)
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g != w.grace || *g < 45 {
		c.errorf("terminationGracePeriodSeconds %v, want %d (at least 45: shutdown waits for webhook deliveries)", g, w.grace)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) > 0 {
		c.errorf("%d containers, want only dashauth", len(spec.Containers))
		return
	}
	ctr := spec.Containers[0]
	if ctr.Image != w.image {
		c.errorf("image %q, want %q", ctr.Image, w.image)
	}
	if len(ctr.Command) > 0 || len(ctr.Args) > 0 {
		c.errorf("command %q args %q: the image's entrypoint serves", ctr.Command, ctr.Args)
	}
	if len(ctr.Ports) != 1 || ctr.Ports[0].Name != "http" || ctr.Ports[0].ContainerPort != 8080 {
		c.errorf("ports %+v, want http 8080 (LISTEN_ADDR 0.0.0.0:8080)", ctr.Ports)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", ctr.LivenessProbe, "/healthz"}, {"readiness", ctr.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != intstr.FromString("http") {
			c.errorf("%s probe %+v, want GET %s on the http port", p.name, p.probe, p.path)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := ctr.Resources.Requests[r]; !ok || q.IsZero() {
			c.errorf("no %s request", r)
		}
	}
	switch {
	case w.preStop == 0 && ctr.Lifecycle != nil:
		c.errorf("lifecycle %+v, want none", ctr.Lifecycle)
	case w.preStop != 0 && (ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil || ctr.Lifecycle.PreStop.Sleep == nil ||
		ctr.Lifecycle.PreStop.Sleep.Seconds != w.preStop):
		c.errorf("preStop %+v, want a sleep of %d s", ctr.Lifecycle, w.preStop)
	}
	c.env(w, ctr)
	c.members(w, d, spec, ctr, cm)
}

// podSecurity is the Pod Security Standard "restricted", plus a read-only root and no API token.
func (c *checker) podSecurity(spec corev1.PodSpec) {
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		c.errorf("pod securityContext %+v, want runAsNonRoot, a non-zero runAsUser and the RuntimeDefault seccomp profile", psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		c.errorf("the service account token is mounted: dashauth never talks to the Kubernetes API")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		c.errorf("the pod shares a host namespace")
	}
	for _, ctr := range spec.Containers {
		sc := ctr.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil ||
			!*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			(sc.Privileged != nil && *sc.Privileged) || sc.Capabilities == nil ||
			!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			c.errorf("container %s securityContext %+v, want non-root, read-only root filesystem, no privilege escalation, all capabilities dropped", ctr.Name, sc)
		}
	}
}

// env checks the mapping to the contract's variables: each a plain value or a key of the configured Secret.
func (c *checker) env(w want, ctr corev1.Container) {
	if len(ctr.EnvFrom) > 0 {
		c.errorf("envFrom %+v: every variable should be named", ctr.EnvFrom)
	}
	plain, refs := map[string]string{}, map[string]string{}
	for _, e := range ctr.Env {
		_, dup1 := plain[e.Name]
		_, dup2 := refs[e.Name]
		switch {
		case dup1 || dup2:
			c.errorf("%s is set twice", e.Name)
		case !slices.Contains(contractVars, e.Name):
			c.errorf("%s is not one of the contract's variables", e.Name)
		case e.ValueFrom == nil && slices.Contains(secretVars, e.Name):
			c.errorf("%s is a secret written into the pod spec; it must come from the Secret", e.Name)
		case e.ValueFrom == nil:
			plain[e.Name] = e.Value
		case e.Value != "" || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.ConfigMapKeyRef != nil ||
			e.ValueFrom.FieldRef != nil || e.ValueFrom.ResourceFieldRef != nil || e.ValueFrom.FileKeyRef != nil:
			c.errorf("%s: %+v, want a value or a secretKeyRef", e.Name, e)
		case e.ValueFrom.SecretKeyRef.Name != w.secret:
			c.errorf("%s comes from the Secret %q, want %q", e.Name, e.ValueFrom.SecretKeyRef.Name, w.secret)
		case e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional:
			c.errorf("%s is optional: a missing key should stop the pod, not start it without the secret", e.Name)
		default:
			refs[e.Name] = e.ValueFrom.SecretKeyRef.Key
		}
	}
	for _, m := range []struct {
		what      string
		got, want map[string]string
	}{{"value", plain, w.env}, {"secret key", refs, w.secretEnv}} {
		for _, name := range slices.Sorted(maps.Keys(m.got)) {
			if v, ok := m.want[name]; !ok || v != m.got[name] {
				c.errorf("%s has the %s %q, want %q (set: %v)", name, m.what, m.got[name], v, ok)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(m.want)) {
			if _, ok := m.got[name]; !ok {
				c.errorf("%s is missing, want the %s %q", name, m.what, m.want[name])
			}
		}
	}
}

// members checks the members file: the ConfigMap mounted read-only where MEMBERS_FILE points, and the checksum that
// rolls the pods when the chart's file changes.
func (c *checker) members(w want, d *appsv1.Deployment, spec corev1.PodSpec, ctr corev1.Container, cm *corev1.ConfigMap) {
	sum, annotated := d.Spec.Template.Annotations["checksum/members"]
	if w.members == "" {
		if len(spec.Volumes) > 0 || len(ctr.VolumeMounts) > 0 || annotated {
			c.errorf("volumes %+v, mounts %+v, checksum %q: want no members file", spec.Volumes, ctr.VolumeMounts, sum)
		}
		return
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
		c.errorf("checksum/members %q is not a SHA-256: the pods would not roll when the members change", sum)
	}
	var file string
	for _, e := range ctr.Env {
		if e.Name == "MEMBERS_FILE" {
			file = e.Value
		}
	}
	dir, base := path.Split(file)
	var key string
	for _, m := range ctr.VolumeMounts {
		if m.MountPath != strings.TrimSuffix(dir, "/") || m.SubPath != "" {
			continue
		}
		if !m.ReadOnly {
			c.errorf("the members file is mounted writable")
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == w.members {
				for _, it := range v.ConfigMap.Items {
					if it.Path == base {
						key = it.Key
					}
				}
			}
		}
	}
	if key == "" {
		c.errorf("MEMBERS_FILE %q is not a key of the ConfigMap %q mounted read-only: mounts %+v volumes %+v",
			file, w.members, ctr.VolumeMounts, spec.Volumes)
		return
	}
	if cm == nil {
		return
	}
	data, ok := cm.Data[key]
	if cm.Name != w.members || !ok {
		c.errorf("the chart's ConfigMap %q has no key %q", cm.Name, key)
		return
	}
	if h := sha256.Sum256([]byte(data)); hex.EncodeToString(h[:]) != sum {
		c.errorf("checksum/members %s is not the SHA-256 of the members file", sum)
	}
	// The members file format (contract, "Members file"), strictly.
	var list struct {
		Members []struct {
			Email          string `json:"email"`
			OrganizationID string `json:"organization_id"`
			Role           string `json:"role"`
			Active         bool   `json:"active"`
			FirstName      string `json:"first_name"`
			LastName       string `json:"last_name"`
		} `json:"members"`
	}
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil || len(list.Members) == 0 || dec.More() {
		c.errorf("the members file %q is not a members list: %v", data, err)
	}
	for _, m := range list.Members {
		if m.Email == "" || m.OrganizationID == "" {
			c.errorf("the member %+v has no email or organization_id", m)
		}
	}
}

// testPod checks the helm test: dashauth check in the Deployment's image with the Deployment's configuration.
func (c *checker) testPod(d *appsv1.Deployment, p *corev1.Pod) {
	if p.Annotations["helm.sh/hook"] != "test" {
		c.errorf("the Pod %s is not a helm test (annotations %v)", p.Name, p.Annotations)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		c.errorf("the test pod's restartPolicy is %q, want Never", p.Spec.RestartPolicy)
	}
	c.podSecurity(p.Spec)
	spec := d.Spec.Template.Spec
	if len(p.Spec.Containers) != 1 || len(spec.Containers) != 1 {
		c.errorf("the test pod has %d containers, want 1", len(p.Spec.Containers))
		return
	}
	tc, dc := p.Spec.Containers[0], spec.Containers[0]
	if !slices.Equal(tc.Command, []string{"/dashauth", "check"}) || len(tc.Args) > 0 {
		c.errorf("the test pod runs %q %q, want [/dashauth check]", tc.Command, tc.Args)
	}
	for _, same := range []struct {
		what      string
		test, dep any
	}{
		{"image", tc.Image, dc.Image},
		{"env", tc.Env, dc.Env},
		{"volume mounts", tc.VolumeMounts, dc.VolumeMounts},
		{"volumes", p.Spec.Volumes, spec.Volumes},
		{"container securityContext", tc.SecurityContext, dc.SecurityContext},
		{"pod securityContext", p.Spec.SecurityContext, spec.SecurityContext},
	} {
		if !equality.Semantic.DeepEqual(same.test, same.dep) {
			c.errorf("the test pod's %s differ from the Deployment's: it would check another configuration", same.what)
		}
	}
}

func (c *checker) ingress(w want, ing *networkingv1.Ingress, svc *corev1.Service) {
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != w.ingress || ing.Spec.Rules[0].HTTP == nil {
		c.errorf("Ingress rules %+v, want one for %s", ing.Spec.Rules, w.ingress)
		return
	}
	if ing.Spec.DefaultBackend != nil {
		c.errorf("the Ingress has a default backend: it would send every other path (/metrics) to dashauth")
	}
	var paths []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		paths = append(paths, p.Path)
		b := p.Backend.Service
		if p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix || b == nil || b.Name != svc.Name ||
			b.Port.Name != svc.Spec.Ports[0].Name {
			c.errorf("Ingress path %s: %+v, want a Prefix to the Service %s port http", p.Path, p, svc.Name)
		}
	}
	if !slices.Equal(paths, ingressPaths) {
		c.errorf("the Ingress routes %q, want exactly %q", paths, ingressPaths)
	}
	for _, tls := range ing.Spec.TLS {
		if !slices.Contains(tls.Hosts, w.ingress) {
			c.errorf("Ingress TLS %+v does not cover %s", tls, w.ingress)
		}
	}
}

// selfTest makes sure decoding stays strict: an unknown or a duplicate field must be an error.
func selfTest() error {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 1}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, type: NodePort}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, env: [{name: A, valu: b}]}]}\n",
	} {
		if _, err := decode([]byte(doc)); err == nil {
			return fmt.Errorf("decoding is not strict: %q decoded", doc)
		}
	}
	return nil
}

func main() {
	dir := flag.String("dir", "", "the folder with one rendered <values file name>.yaml per values file")
	flag.Parse()
	if err := selfTest(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	files, _ := filepath.Glob(filepath.Join(*dir, "*.yaml"))
	failed := len(files) == 0
	if failed {
		fmt.Printf("FAIL: no rendered manifests in %q\n", *dir)
	}
	done := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		done[name] = true
		w, ok := cases[name]
		var problems []string
		data, err := os.ReadFile(f)
		objs, derr := decode(data)
		switch err = cmp.Or(err, derr); {
		case !ok:
			problems = []string{"no expectations for this values file in check/main.go"}
		case err != nil:
			problems = []string{err.Error()}
		default:
			problems = check(w, objs)
		}
		if len(problems) > 0 {
			failed = true
			fmt.Printf("FAIL %s:\n  %s\n", name, strings.Join(problems, "\n  "))
		} else {
			fmt.Printf("ok   %s: %d objects decoded strictly, mapping checked\n", name, len(objs))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		if !done[name] && len(files) > 0 {
			failed = true
			fmt.Printf("FAIL %s: expected, but nothing was rendered from testdata/%s.yaml\n", name, name)
		}
	}
	if failed {
		os.Exit(1)
	}
}
