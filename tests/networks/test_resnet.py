import torch

from lsmseg.networks import LinkNetwork, PatchDiscriminator, ResnetDecoder, ResnetEncoder


def test_encoder_decoder_shapes_follow_the_resnet_split() -> None:
    enc, dec = ResnetEncoder(1, ngf=8), ResnetDecoder(4, ngf=8)
    z = enc(torch.rand(2, 1, 64, 64))
    assert z.shape == (2, 32, 16, 16)  # 4 * ngf channels at 1/4 resolution
    assert dec(z).shape == (2, 4, 64, 64)
    assert LinkNetwork(32)(z).shape == z.shape


def test_latent_critic_gives_2x2_logits_on_the_paper_latent() -> None:
    critic = PatchDiscriminator(256, ndf=8, n_layers=3)
    assert critic(torch.rand(2, 256, 32, 32)).shape == (2, 1, 2, 2)


def test_weights_are_normal_0_02_and_biases_zero() -> None:
    enc = ResnetEncoder(1, ngf=16)
    w = torch.cat([m.weight.flatten() for m in enc.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(w.std()) - 0.02) < 0.002
    assert all(float(m.bias.abs().max()) == 0 for m in enc.modules() if isinstance(m, torch.nn.Conv2d))


def test_nhwc_head_is_the_same_decoder_in_another_layout() -> None:
    """Same state dict, same logits and gradients (float rounding); only the head runs NHWC."""
    torch.manual_seed(0)
    nchw = ResnetDecoder(2, ngf=4)
    nhwc = ResnetDecoder(2, ngf=4, nhwc_head=True)
    nhwc.load_state_dict(nchw.state_dict())
    z = torch.randn(3, 16, 8, 8)
    seen: list[bool] = []
    nhwc.model[-1].register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    a, b = nchw(z), nhwc(z)
    assert seen == [True] and a.shape == b.shape == (3, 2, 32, 32)
    assert torch.allclose(a, b, atol=1e-6)
    a.square().mean().backward()
    b.square().mean().backward()
    for pa, pb in zip(nchw.parameters(), nhwc.parameters(), strict=True):
        assert pa.grad is not None and pb.grad is not None
        assert torch.allclose(pa.grad, pb.grad, rtol=1e-4, atol=1e-6)


def _node_names(root: torch.Tensor) -> set[str]:
    """Names of every autograd node behind ``root``."""
    seen, names, todo = set(), set(), [root.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo += [next_fn for next_fn, _ in node.next_functions]
    return names


def test_no_in_place_op_on_a_view_costs_autograd_a_copy_slices_node() -> None:
    """InstanceNorm returns a view: an in-place activation on it adds a CopySlices node (two more
    copies per layer in the backward). The activations are out of place: no such node."""
    encoder, decoder = ResnetEncoder(1, ngf=4), ResnetDecoder(2, ngf=4)
    critic = PatchDiscriminator(16, ndf=4, n_layers=2)
    z = encoder(torch.rand(2, 1, 64, 64))  # a 16x16 latent: 2x2 critic logits
    names = _node_names(decoder(z).sum() + critic(z).sum())
    assert {"ReluBackward0", "LeakyReluBackward0", "NativeBatchNormBackward0"} <= names
    assert "CopySlices" not in names
