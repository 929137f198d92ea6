"""A SentencePiece ``tokenizer.model`` (openpi ships PaliGemma's that way) works wherever a
``tokenizer.json`` does: `pi05-moe import --tokenizer X.model`, the checkpoint, inference (#16).

The model file is trained here, tiny, by the sentencepiece library itself (BPE, as PaliGemma's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_lerobot_import import SAME_SLOTS, TINY, fixture_present, observation  # noqa: F401

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy
from pi05_moe_policy.transforms.tokenizer import SentencePieceTokenizer, build_tokenizer

TEXT = ['lift the red cube', 'lift the hot cube', 'put the cube in the bin', 'open the gripper',
        'move the arm to the left', 'pick up the warm object', 'stack the blue block']


@pytest.fixture(scope='module')
def spm_model(tmp_path_factory) -> Path:
    import sentencepiece

    tmp = tmp_path_factory.mktemp('spm')
    corpus = tmp / 'corpus.txt'
    corpus.write_text('\n'.join(TEXT * 20) + '\n')
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp / 'tokenizer'), vocab_size=120,
        model_type='bpe', pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2)
    return tmp / 'tokenizer.model'


def test_a_model_file_gives_a_sentencepiece_tokenizer_with_bos(spm_model):
    import sentencepiece

    tok = build_tokenizer('hf', 0, str(spm_model))
    assert isinstance(tok, SentencePieceTokenizer)
    own = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    ids = tok.encode('lift the hot cube')
    assert ids == [2, *own.encode('lift the hot cube')] and len(ids) > 2
    assert tok.pad_id == 0 and tok.vocab_size == 120
    assert all(0 <= i < 120 for i in tok.encode('³ ① ünïcødé \n 42'))


def test_a_missing_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match='no SentencePiece model there'):
        build_tokenizer('hf', 0, str(tmp_path / 'nope.model'))


def test_import_with_a_sentencepiece_model_round_trips_through_the_checkpoint(spm_model,
                                                                              tmp_path):
    out = tmp_path / 'ckpt'
    assert cli.main(['import', '--from', 'lerobot', str(TINY), '--out', str(out), '--tokenizer',
                     str(spm_model), '--no-moe', '--camera-slots', SAME_SLOTS, '--quiet']) == 0
    policy = Policy.load(out)
    assert isinstance(policy.tokenizer, SentencePieceTokenizer)
    assert (out / SentencePieceTokenizer.FILE).read_bytes() == spm_model.read_bytes()
    ref = np.load(TINY / 'reference.npz')
    actions = policy.infer(observation(ref, 'caseA'))['actions']
    assert np.isfinite(actions).all() and actions.shape[0] > 0
