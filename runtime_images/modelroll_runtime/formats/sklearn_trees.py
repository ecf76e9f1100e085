"""sklearn trees and forests as float64 ONNX graphs that compute what sklearn computes.

skl2onnx builds trees as float32 graphs only (ai.onnx.ml TreeEnsembleClassifier/Regressor
answer float32), so their probabilities and values are float32 where sklearn's are float64.
This builds the ai.onnx.ml opset 5 `TreeEnsemble`, typed by its input, and follows sklearn
step by step:

- the input is rounded to float32 and back (sklearn's trees read float32) and compared with
  the float64 thresholds: `x <= threshold`, as sklearn does;
- a leaf answers sklearn's float64 leaf value (classifiers: the class fractions, normalised
  as `predict_proba` normalises them);
- trees are summed in order and the sum divided by their number, as forests average.

A leaf of `TreeEnsemble` feeds one target, so a classifier's trees appear once per class.
The compiler still checks the result against sklearn on its probe rows.
"""

from __future__ import annotations

from typing import Any

FOREST_TYPES = ("RandomForest", "ExtraTrees")
TREE_TYPES = ("DecisionTree", "ExtraTree")


def supports(estimator: Any) -> bool:
    name = type(estimator).__name__
    kinds = (*FOREST_TYPES, *TREE_TYPES)
    single_output = getattr(estimator, "n_outputs_", 1) == 1
    return name.startswith(kinds) and name.endswith(("Classifier", "Regressor")) and single_output


def to_onnx(estimator: Any, n_features: int) -> Any:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    classifier = hasattr(estimator, "classes_")
    members = list(getattr(estimator, "estimators_", [estimator]))
    n_targets = len(estimator.classes_) if classifier else 1
    nodes: dict[str, list[int]] = {k: [] for k in ("feature", "true", "false", "tl", "fl")}
    splits: list[float] = []
    roots: list[int] = []
    leaf_targets: list[int] = []
    leaf_weights: list[float] = []
    for target in range(n_targets):
        for member in members:
            tree = member.tree_
            values = tree.value[:, 0, :].astype(np.float64)
            if classifier:
                sums = values.sum(axis=1)[:, np.newaxis]
                sums[sums == 0.0] = 1.0
                values = values / sums
            internal = [int(n) for n in np.flatnonzero(tree.children_left >= 0)]
            node_at = {n: len(splits) + i for i, n in enumerate(internal)}
            leaf_at: dict[int, int] = {}

            def ref(
                child: int,
                node_at: dict[int, int] = node_at,
                leaf_at: dict[int, int] = leaf_at,
                values: Any = values,
                target: int = target,
            ) -> int:
                if child in node_at:
                    return node_at[child]
                if child not in leaf_at:
                    leaf_at[child] = len(leaf_weights)
                    leaf_targets.append(target)
                    leaf_weights.append(float(values[child, target]))
                return leaf_at[child]

            if not internal:  # a lone leaf: one split whose both branches lead to it
                leaf = ref(0)
                roots.append(len(splits))
                splits.append(0.0)
                for key, value in (("feature", 0), ("true", leaf), ("false", leaf)):
                    nodes[key].append(value)
                nodes["tl"].append(1)
                nodes["fl"].append(1)
                continue
            roots.append(node_at[0])
            for n in internal:
                left, right = int(tree.children_left[n]), int(tree.children_right[n])
                splits.append(float(tree.threshold[n]))
                nodes["feature"].append(int(tree.feature[n]))
                nodes["true"].append(ref(left))
                nodes["false"].append(ref(right))
                nodes["tl"].append(int(left not in node_at))
                nodes["fl"].append(int(right not in node_at))
    double = TensorProto.DOUBLE
    graph_nodes = [
        helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["as_float"], ["rounded"], to=double),
        helper.make_node(
            "TreeEnsemble",
            ["rounded"],
            ["summed"],
            domain="ai.onnx.ml",
            n_targets=n_targets,
            aggregate_function=1,  # SUM, then one division: a forest's average, in order
            post_transform=0,
            tree_roots=roots,
            nodes_featureids=nodes["feature"],
            nodes_splits=numpy_helper.from_array(np.array(splits, np.float64)),
            nodes_modes=numpy_helper.from_array(np.zeros(len(splits), np.uint8)),  # x <= t
            nodes_truenodeids=nodes["true"],
            nodes_trueleafs=nodes["tl"],
            nodes_falsenodeids=nodes["false"],
            nodes_falseleafs=nodes["fl"],
            leaf_targetids=leaf_targets,
            leaf_weights=numpy_helper.from_array(np.array(leaf_weights, np.float64)),
        ),
    ]
    count = numpy_helper.from_array(np.array(float(len(members))), "count")
    initializers = [count]
    graph_nodes.append(helper.make_node("Div", ["summed", "count"], ["averaged"]))
    if classifier:
        classes = np.asarray(estimator.classes_)
        if classes.dtype.kind not in "iu" and classes.dtype.kind not in "UO":
            raise ValueError(f"class labels of dtype {classes.dtype} are not supported")
        integer = classes.dtype.kind in "iu"
        labels = classes.astype(np.int64) if integer else classes.astype(object)
        initializers.append(numpy_helper.from_array(labels, "classes"))
        graph_nodes += [
            helper.make_node("Identity", ["averaged"], ["probabilities"]),
            helper.make_node("ArgMax", ["averaged"], ["best"], axis=1, keepdims=0),
            helper.make_node("Gather", ["classes", "best"], ["label"], axis=0),
        ]
        label_type = TensorProto.INT64 if integer else TensorProto.STRING
        outputs = [
            helper.make_tensor_value_info("label", label_type, [None]),
            helper.make_tensor_value_info("probabilities", double, [None, n_targets]),
        ]
    else:
        graph_nodes.append(helper.make_node("Identity", ["averaged"], ["variable"]))
        outputs = [helper.make_tensor_value_info("variable", double, [None, 1])]
    graph = helper.make_graph(
        graph_nodes,
        type(estimator).__name__,
        [helper.make_tensor_value_info("input", double, [None, n_features])],
        outputs,
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 5)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model
