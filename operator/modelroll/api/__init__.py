"""The ModelDeployment API: typed models from which the CRD, its docs and the parsers come.

`v1alpha1` holds the models; `crd` turns them into the CustomResourceDefinition;
`reference` writes docs/api-reference.md; `generate` writes both into the checkout.
"""
