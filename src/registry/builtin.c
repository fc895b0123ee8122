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

const char *const reg_builtin_crds[] = {
	namespace_crd,
	crd_crd,
	lease_crd,
	NULL,
};
/* clang-format on */
