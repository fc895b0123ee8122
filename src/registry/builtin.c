/*
 * builtin.c -- the built-in types, written as CustomResourceDefinitions so
 * that they take the same path as a user's types (registry.h).
 *
 * For legibility the JSON below is written with single quotes; reg_new()
 * turns them into double quotes before parsing (so no text here may contain
 * an apostrophe).
 */
#include <stddef.h>

/* clang-format off */

/* Shared pieces of schema. */
#define META "'metadata':{'type':'object'}"
#define TYPEMETA                                                              \
	"'apiVersion':{'type':'string','description':'APIVersion defines "  \
	"the versioned schema of this representation of an object.'},"        \
	"'kind':{'type':'string','description':'Kind is a string value "      \
	"representing the REST resource this object represents.'}"
#define CONDITIONS                                                            \
	"'conditions':{'type':'array','items':{'type':'object',"              \
	"'x-kubernetes-preserve-unknown-fields':true,'properties':{"         \
	"'type':{'type':'string'},'status':{'type':'string'},"               \
	"'reason':{'type':'string'},'message':{'type':'string'},"            \
	"'lastTransitionTime':{'type':'string','format':'date-time'}}}}"

static const char namespace_crd[] =
	"{'apiVersion':'apiextensions.k8s.io/v1',"
	"'kind':'CustomResourceDefinition',"
	"'metadata':{'name':'namespaces'},"
	"'spec':{'group':'','scope':'Cluster',"
	"'names':{'plural':'namespaces','singular':'namespace',"
	"'kind':'Namespace','listKind':'NamespaceList','shortNames':['ns']},"
	"'versions':[{'name':'v1','served':true,'storage':true,"
	"'subresources':{'status':{}},"
	"'additionalPrinterColumns':["
	"{'name':'Status','type':'string','jsonPath':'.status.phase'},"
	"{'name':'Age','type':'date','jsonPath':'.metadata.creationTimestamp'}],"
	"'schema':{'openAPIV3Schema':{'type':'object','description':"
	"'Namespace provides a scope for names. In signalbox each namespace "
	"is also one isolated mesh.','properties':{" TYPEMETA "," META ","
	"'spec':{'type':'object','description':'Spec defines the behavior of "
	"the Namespace.','properties':{'finalizers':{'type':'array',"
	"'items':{'type':'string'}}}},"
	"'status':{'type':'object','properties':{'phase':{'type':'string',"
	"'enum':['Active','Terminating']}," CONDITIONS "}}}}}}]}}";

static const char crd_crd[] =
	"{'apiVersion':'apiextensions.k8s.io/v1',"
	"'kind':'CustomResourceDefinition',"
	"'metadata':{'name':'customresourcedefinitions.apiextensions.k8s.io'},"
	"'spec':{'group':'apiextensions.k8s.io','scope':'Cluster',"
	"'names':{'plural':'customresourcedefinitions',"
	"'singular':'customresourcedefinition',"
	"'kind':'CustomResourceDefinition',"
	"'listKind':'CustomResourceDefinitionList','shortNames':['crd','crds'],"
	"'categories':['api-extensions']},"
	"'versions':[{'name':'v1','served':true,'storage':true,"
	"'subresources':{'status':{}},"
	"'additionalPrinterColumns':[{'name':'Created At','type':'string',"
	"'format':'date-time',"
	"'jsonPath':'.metadata.creationTimestamp'}],"
	"'schema':{'openAPIV3Schema':{'type':'object','description':"
	"'CustomResourceDefinition represents a resource that should be "
	"exposed on the API server.','required':['spec'],'properties':{"
	TYPEMETA "," META ","
	"'spec':{'type':'object','required':['group','names','scope',"
	"'versions'],'properties':{"
	"'group':{'type':'string','description':'group is the API group of "
	"the defined custom resource.'},"
	"'names':{'type':'object','required':['plural','kind'],'properties':{"
	"'plural':{'type':'string'},'singular':{'type':'string'},"
	"'kind':{'type':'string'},'listKind':{'type':'string'},"
	"'shortNames':{'type':'array','items':{'type':'string'}},"
	"'categories':{'type':'array','items':{'type':'string'}}}},"
	"'scope':{'type':'string','enum':['Cluster','Namespaced']},"
	"'preserveUnknownFields':{'type':'boolean'},"
	"'conversion':{'type':'object',"
	"'x-kubernetes-preserve-unknown-fields':true},"
	"'versions':{'type':'array','items':{'type':'object',"
	"'required':['name','served','storage'],'properties':{"
	"'name':{'type':'string'},'served':{'type':'boolean'},"
	"'storage':{'type':'boolean'},'deprecated':{'type':'boolean'},"
	"'deprecationWarning':{'type':'string'},"
	"'schema':{'type':'object',"
	"'x-kubernetes-preserve-unknown-fields':true},"
	"'subresources':{'type':'object',"
	"'x-kubernetes-preserve-unknown-fields':true},"
	"'selectableFields':{'type':'array','items':{'type':'object',"
	"'x-kubernetes-preserve-unknown-fields':true}},"
	"'additionalPrinterColumns':{'type':'array','items':{'type':'object',"
	"'required':['name','type','jsonPath'],'properties':{"
	"'name':{'type':'string'},'type':{'type':'string'},"
	"'format':{'type':'string'},'description':{'type':'string'},"
	"'priority':{'type':'integer','format':'int32'},"
	"'jsonPath':{'type':'string'}}}}}}}}},"
	"'status':{'type':'object','properties':{" CONDITIONS ","
	"'acceptedNames':{'type':'object',"
	"'x-kubernetes-preserve-unknown-fields':true},"
	"'storedVersions':{'type':'array','items':{'type':'string'}}}}}}}}]}}";

static const char lease_crd[] =
	"{'apiVersion':'apiextensions.k8s.io/v1',"
	"'kind':'CustomResourceDefinition',"
	"'metadata':{'name':'leases.coordination.k8s.io'},"
	"'spec':{'group':'coordination.k8s.io','scope':'Namespaced',"
	"'names':{'plural':'leases','singular':'lease','kind':'Lease',"
	"'listKind':'LeaseList'},"
	"'versions':[{'name':'v1','served':true,'storage':true,"
	"'additionalPrinterColumns':["
	"{'name':'Holder','type':'string','jsonPath':'.spec.holderIdentity'},"
	"{'name':'Age','type':'date','jsonPath':'.metadata.creationTimestamp'}],"
	"'schema':{'openAPIV3Schema':{'type':'object','description':"
	"'Lease defines a lease concept.','properties':{" TYPEMETA "," META ","
	"'spec':{'type':'object','properties':{"
	"'holderIdentity':{'type':'string','description':'holderIdentity "
	"contains the identity of the holder of a current lease.'},"
	"'leaseDurationSeconds':{'type':'integer','format':'int32'},"
	"'acquireTime':{'type':'string','format':'date-time'},"
	"'renewTime':{'type':'string','format':'date-time'},"
	"'leaseTransitions':{'type':'integer','format':'int32'},"
	"'strategy':{'type':'string'},"
	"'preferredHolder':{'type':'string'}}}}}}}]}}";


/* RBAC (rbac.authorization.k8s.io/v1). */
#define RULES                                                                 \
	"'rules':{'type':'array','items':{'type':'object',"                  \
	"'required':['verbs'],'properties':{"                                 \
	"'apiGroups':{'type':'array','items':{'type':'string'}},"             \
	"'resources':{'type':'array','items':{'type':'string'}},"             \
	"'resourceNames':{'type':'array','items':{'type':'string'}},"         \
	"'nonResourceURLs':{'type':'array','items':{'type':'string'}},"       \
	"'verbs':{'type':'array','items':{'type':'string'}}}}}"
#define SUBJECTS                                                              \
	"'subjects':{'type':'array','items':{'type':'object',"               \
	"'required':['kind','name'],'properties':{"                          \
	"'kind':{'type':'string'},'apiGroup':{'type':'string'},"             \
	"'name':{'type':'string'},'namespace':{'type':'string'}}}},"          \
	"'roleRef':{'type':'object','required':['apiGroup','kind','name'],"   \
	"'properties':{'apiGroup':{'type':'string'},'kind':{'type':'string',"  \
	"'enum':['Role','ClusterRole']},'name':{'type':'string'}}}"
#define RBAC_CRD(plural, singular, kind, scope, props, cols)                 \
	"{'apiVersion':'apiextensions.k8s.io/v1',"                            \
	"'kind':'CustomResourceDefinition',"                                  \
	"'metadata':{'name':'" plural ".rbac.authorization.k8s.io'},"         \
	"'spec':{'group':'rbac.authorization.k8s.io','scope':'" scope "',"    \
	"'names':{'plural':'" plural "','singular':'" singular "',"           \
	"'kind':'" kind "','listKind':'" kind "List'},"                       \
	"'versions':[{'name':'v1','served':true,'storage':true,"              \
	"'additionalPrinterColumns':[" cols "],"                              \
	"'schema':{'openAPIV3Schema':{'type':'object','properties':{"          \
	TYPEMETA "," META "," props "}}}}]}}"
#define CREATED_AT                                                            \
	"{'name':'Created At','type':'string','format':'date-time',"          \
	"'jsonPath':'.metadata.creationTimestamp'}"
#define BINDING_COLS                                                          \
	"{'name':'Role','type':'string','jsonPath':'.roleRef.name'},"        \
	"{'name':'Age','type':'date','jsonPath':'.metadata.creationTimestamp'},"\
	"{'name':'Users','type':'string','priority':1,"                       \
	"'jsonPath':'.subjects[?(@.kind==\\\"User\\\")].name'},"               \
	"{'name':'Groups','type':'string','priority':1,"                      \
	"'jsonPath':'.subjects[?(@.kind==\\\"Group\\\")].name'},"              \
	"{'name':'ServiceAccounts','type':'string','priority':1,"             \
	"'jsonPath':'.subjects[?(@.kind==\\\"ServiceAccount\\\")].name'}"

static const char role_crd[] =
	RBAC_CRD("roles", "role", "Role", "Namespaced", RULES, CREATED_AT);
static const char clusterrole_crd[] =
	RBAC_CRD("clusterroles", "clusterrole", "ClusterRole", "Cluster",
		 RULES ",'aggregationRule':{'type':'object',"
		 "'properties':{'clusterRoleSelectors':{'type':'array',"
		 "'items':{'type':'object',"
		 "'x-kubernetes-preserve-unknown-fields':true}}}}",
		 CREATED_AT);
static const char rolebinding_crd[] =
	RBAC_CRD("rolebindings", "rolebinding", "RoleBinding", "Namespaced",
		 SUBJECTS, BINDING_COLS);
static const char clusterrolebinding_crd[] =
	RBAC_CRD("clusterrolebindings", "clusterrolebinding",
		 "ClusterRoleBinding", "Cluster", SUBJECTS, BINDING_COLS);

/* Reviews (authorization.k8s.io/v1): answered, never stored. The
 * annotation marks a type the API serves with create only. */
#define REVIEW_CRD(plural, singular, kind, scope)                             \
	"{'apiVersion':'apiextensions.k8s.io/v1',"                            \
	"'kind':'CustomResourceDefinition',"                                  \
	"'metadata':{'name':'" plural ".authorization.k8s.io',"               \
	"'annotations':{'signalbox.dev/verbs':'create'}},"                    \
	"'spec':{'group':'authorization.k8s.io','scope':'" scope "',"         \
	"'names':{'plural':'" plural "','singular':'" singular "',"           \
	"'kind':'" kind "'},"                                                 \
	"'versions':[{'name':'v1','served':true,'storage':true,"              \
	"'schema':{'openAPIV3Schema':{'type':'object','properties':{"          \
	TYPEMETA "," META ",'spec':{'type':'object',"                          \
	"'x-kubernetes-preserve-unknown-fields':true},"                       \
	"'status':{'type':'object',"                                          \
	"'x-kubernetes-preserve-unknown-fields':true}}}}}]}}"

static const char ssar_crd[] = REVIEW_CRD("selfsubjectaccessreviews",
	"selfsubjectaccessreview", "SelfSubjectAccessReview", "Cluster");
static const char ssrr_crd[] = REVIEW_CRD("selfsubjectrulesreviews",
	"selfsubjectrulesreview", "SelfSubjectRulesReview", "Cluster");
static const char sar_crd[] = REVIEW_CRD("subjectaccessreviews",
	"subjectaccessreview", "SubjectAccessReview", "Cluster");
static const char lsar_crd[] = REVIEW_CRD("localsubjectaccessreviews",
	"localsubjectaccessreview", "LocalSubjectAccessReview", "Namespaced");

/* Minted bearer tokens (signalbox token create): only their SHA-256 is
 * stored, as the object's name. */
static const char token_crd[] =
	"{'apiVersion':'apiextensions.k8s.io/v1',"
	"'kind':'CustomResourceDefinition',"
	"'metadata':{'name':'tokens.auth.signalbox.dev'},"
	"'spec':{'group':'auth.signalbox.dev','scope':'Cluster',"
	"'names':{'plural':'tokens','singular':'token','kind':'Token'},"
	"'versions':[{'name':'v1','served':true,'storage':true,"
	"'additionalPrinterColumns':["
	"{'name':'User','type':'string','jsonPath':'.spec.user'},"
	"{'name':'Expires','type':'string','jsonPath':'.spec.expiresAt'},"
	"{'name':'Age','type':'date','jsonPath':'.metadata.creationTimestamp'}],"
	"'schema':{'openAPIV3Schema':{'type':'object','description':"
	"'A bearer token: the object is named by the SHA-256 of the token, "
	"which is shown once and never stored.','properties':{" TYPEMETA ","
	META ",'spec':{'type':'object','required':['user'],'properties':{"
	"'user':{'type':'string','minLength':1},"
	"'groups':{'type':'array','items':{'type':'string'}},"
	"'expiresAt':{'type':'string','format':'date-time'},"
	"'peer':{'type':'object','description':'A mesh peer credential: "
	"valid while this Peer exists.','properties':{"
	"'namespace':{'type':'string'},'name':{'type':'string'},"
	"'uid':{'type':'string'}}},"
	"'description':{'type':'string'}}}}}}}]}}";


/* The mesh (mesh.signalbox.dev/v1alpha1, docs/MESH.md). */
#define MESH_CRD(plural, singular, kind, scope, extra, cols, props)           \
	"{'apiVersion':'apiextensions.k8s.io/v1',"                            \
	"'kind':'CustomResourceDefinition',"                                  \
	"'metadata':{'name':'" plural ".mesh.signalbox.dev'" extra "},"       \
	"'spec':{'group':'mesh.signalbox.dev','scope':'" scope "',"           \
	"'names':{'plural':'" plural "','singular':'" singular "',"           \
	"'kind':'" kind "','categories':['mesh']},"                           \
	"'versions':[{'name':'v1alpha1','served':true,'storage':true,"        \
	"'subresources':{'status':{}},"                                       \
	"'additionalPrinterColumns':[" cols                                    \
	"{'name':'Age','type':'date','jsonPath':'.metadata.creationTimestamp'}],"\
	"'schema':{'openAPIV3Schema':{'type':'object','properties':{"          \
	TYPEMETA "," META "," props "}}}}]}}"

#define LABEL_SELECTOR(desc)                                                  \
	"{'type':'object','description':'" desc "','properties':{"            \
	"'matchLabels':{'type':'object',"                                     \
	"'additionalProperties':{'type':'string'}},"                          \
	"'matchExpressions':{'type':'array','items':{'type':'object',"       \
	"'required':['key','operator'],'properties':{"                        \
	"'key':{'type':'string'},"                                            \
	"'operator':{'type':'string','enum':['In','NotIn','Exists',"          \
	"'DoesNotExist']},"                                                   \
	"'values':{'type':'array','items':{'type':'string'}}}}}}}"

#define CIDR_PATTERN                                                          \
	"^([0-9]{1,3}[.]){3}[0-9]{1,3}/[0-9]{1,2}$"

static const char network_crd[] = MESH_CRD("networks", "network", "Network",
	"Namespaced", "",
	"{'name':'CIDR','type':'string','jsonPath':'.spec.cidr'},"
	"{'name':'Domain','type':'string','jsonPath':'.spec.domain'},",
	"'spec':{'type':'object','description':'The address range and DNS "
	"domain of the namespace mesh. The oldest Network of a namespace is "
	"the one used.','properties':{"
	"'cidr':{'type':'string','default':'100.64.0.0/10',"
	"'pattern':'" CIDR_PATTERN "'},"
	"'domain':{'type':'string','default':'mesh.local',"
	"'pattern':'^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*"
	"[a-z0-9])?)*$','maxLength':200}}},"
	"'status':{'type':'object','properties':{" CONDITIONS "}}");

static const char peer_crd[] = MESH_CRD("peers", "peer", "Peer",
	"Namespaced", "",
	"{'name':'Address','type':'string','jsonPath':'.status.address'},"
	"{'name':'Online','type':'boolean','jsonPath':'.status.online'},"
	"{'name':'Last Seen','type':'date','jsonPath':'.status.lastSeen'},"
	"{'name':'Endpoints','type':'string','jsonPath':'.status.endpoints',"
	"'priority':1},"
	"{'name':'Version','type':'string','jsonPath':'.status.agentVersion',"
	"'priority':1},"
	"{'name':'Public Key','type':'string','jsonPath':'.spec.publicKey',"
	"'priority':1},",
	"'spec':{'type':'object','description':'A machine of the mesh. Its "
	"labels are its groups.','properties':{"
	"'publicKey':{'type':'string','description':'WireGuard public key, "
	"base64','pattern':'^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$'},"
	"'expiresAt':{'type':'string','format':'date-time'},"
	"'ephemeral':{'type':'boolean','default':false}}},"
	"'status':{'type':'object','properties':{"
	"'address':{'type':'string'},"
	"'endpoints':{'type':'array','items':{'type':'string'}},"
	"'online':{'type':'boolean'},"
	"'lastSeen':{'type':'string','format':'date-time'},"
	"'agentVersion':{'type':'string'},"
	"'handshakes':{'type':'array','items':{'type':'object',"
	"'properties':{'peer':{'type':'string'},"
	"'lastHandshake':{'type':'string','format':'date-time'}}}},"
	CONDITIONS "}}");

static const char policy_crd[] = MESH_CRD("policies", "policy", "Policy",
	"Namespaced", "",
	"{'name':'Bidirectional','type':'boolean',"
	"'jsonPath':'.spec.bidirectional'},"
	"{'name':'Ports','type':'string','jsonPath':'.spec.ports[*].port'},",
	"'spec':{'type':'object','required':['from','to'],'description':"
	"'Allows traffic from the from peers to the to peers on ports (every "
	"port when empty), and back when bidirectional. Everything else is "
	"denied.','properties':{"
	"'from':" LABEL_SELECTOR("Peers that may send.") ","
	"'to':" LABEL_SELECTOR("Peers that may receive.") ","
	"'ports':{'type':'array','items':{'type':'object','properties':{"
	"'protocol':{'type':'string','default':'TCP',"
	"'enum':['TCP','UDP','ICMP','any']},"
	"'port':{'type':'integer','minimum':1,'maximum':65535},"
	"'endPort':{'type':'integer','minimum':1,'maximum':65535}}}},"
	"'bidirectional':{'type':'boolean','default':false}}},"
	"'status':{'type':'object','properties':{" CONDITIONS "}}");

static const char route_crd[] = MESH_CRD("routes", "route", "Route",
	"Namespaced", "",
	"{'name':'Destination','type':'string',"
	"'jsonPath':'.spec.destination'},"
	"{'name':'Active','type':'string','jsonPath':'.status.active'},",
	"'spec':{'type':'object','required':['destination','via'],"
	"'description':'A network reached through router peers: the first "
	"online peer of via carries it for the peers of for.','properties':{"
	"'destination':{'type':'string','pattern':'" CIDR_PATTERN "'},"
	"'via':" LABEL_SELECTOR("The router peers.") ","
	"'for':" LABEL_SELECTOR("The peers that get the route (all when {}).")
	"}},"
	"'status':{'type':'object','properties':{"
	"'active':{'type':'string'}," CONDITIONS "}}");

static const char setupkey_crd[] = MESH_CRD("setupkeys", "setupkey",
	"SetupKey", "Namespaced", "",
	"{'name':'Prefix','type':'string','jsonPath':'.status.prefix'},"
	"{'name':'Reusable','type':'boolean','jsonPath':'.spec.reusable'},"
	"{'name':'Used','type':'integer','jsonPath':'.status.used'},"
	"{'name':'Limit','type':'integer','jsonPath':'.spec.usageLimit'},"
	"{'name':'Expires','type':'string','jsonPath':'.status.expiresAt'},"
	"{'name':'Ephemeral','type':'boolean','jsonPath':'.spec.ephemeral',"
	"'priority':1},",
	"'spec':{'type':'object','description':'An enrolment key. Its secret "
	"is shown once, in the answer to its creation, and stored only as a "
	"hash.','properties':{"
	"'reusable':{'type':'boolean','default':false},"
	"'usageLimit':{'type':'integer','minimum':0,'description':'Most "
	"enrolments of a reusable key; 0 is no limit.'},"
	"'expiresAt':{'type':'string','format':'date-time'},"
	"'ttl':{'type':'string','description':'Lifetime from creation, "
	"e.g. 24h, 30m, 90s.','pattern':'^([0-9]+(h|m|s))+$'},"
	"'ephemeral':{'type':'boolean','default':false},"
	"'peerLabels':{'type':'object','additionalProperties':"
	"{'type':'string'}}}},"
	"'status':{'type':'object','properties':{"
	"'key':{'type':'string'},'prefix':{'type':'string'},"
	"'hash':{'type':'string'},'used':{'type':'integer'},"
	"'expiresAt':{'type':'string','format':'date-time'},"
	CONDITIONS "}}");

/* Enrolment: answered, never stored (docs/MESH.md). */
static const char enrollment_crd[] =
	"{'apiVersion':'apiextensions.k8s.io/v1',"
	"'kind':'CustomResourceDefinition',"
	"'metadata':{'name':'enrollments.mesh.signalbox.dev',"
	"'annotations':{'signalbox.dev/verbs':'create'}},"
	"'spec':{'group':'mesh.signalbox.dev','scope':'Cluster',"
	"'names':{'plural':'enrollments','singular':'enrollment',"
	"'kind':'Enrollment'},"
	"'versions':[{'name':'v1alpha1','served':true,'storage':true,"
	"'schema':{'openAPIV3Schema':{'type':'object','properties':{"
	TYPEMETA "," META ",'spec':{'type':'object',"
	"'required':['setupKey','publicKey','hostname'],'properties':{"
	"'setupKey':{'type':'string'},'publicKey':{'type':'string'},"
	"'hostname':{'type':'string'},"
	"'endpoints':{'type':'array','items':{'type':'string'}},"
	"'agentVersion':{'type':'string'}}},"
	"'status':{'type':'object',"
	"'x-kubernetes-preserve-unknown-fields':true}}}}}]}}";

const char *const reg_builtin_crds[] = {
	namespace_crd,
	crd_crd,
	lease_crd,
	role_crd,
	clusterrole_crd,
	rolebinding_crd,
	clusterrolebinding_crd,
	ssar_crd,
	ssrr_crd,
	sar_crd,
	lsar_crd,
	token_crd,
	network_crd,
	peer_crd,
	policy_crd,
	route_crd,
	setupkey_crd,
	enrollment_crd,
	NULL,
};
/* clang-format on */
