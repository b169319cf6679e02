"""One module per published recipe; ``lsbench.losses.<name>`` is each module's public function.

The integer-label modules (``uniform``, ``off_target``, ``fastai``,
``speech_transformer``, ``fastreid``) each expose ``rows_from_stats(stats, K,
**params)``, the recipe's closed form over :class:`lsbench.losses.primitives.RowStats`,
``check_params`` and ``reduce``: the plain, chunked, fused-linear and
vocabulary-sharded paths all call these, so each formula is written once.
The sequence-model forms (``flax_kl``, ``opennmt``, ``hf_label_smoother``,
``fairseq_v0_10``, ``fairseq``) expose ``rows_from_stats`` and ``check_params``
too (``opennmt``'s statistics are taken with the class weight ``1 − onehot(pad)``);
only their plain path exists so far.
"""
