"""On an accelerator, the emitted module runs where its inputs are and agrees with the CPU.

These tests need CUDA; on a CPU-only machine (like CI) they are skipped, and the CPU behaviour is covered
by every other test file.
"""

import pytest
import torch

import metricc

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name", ["f1", "mcc", "balanced_accuracy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(name, dtype):
    generator = torch.Generator().manual_seed(0)
    preds = torch.rand(4096, generator=generator, dtype=dtype)
    target = (torch.rand(4096, generator=generator) < 0.2).to(dtype)
    module = metricc.loss(name)
    results = []
    for device in ("cpu", "cuda"):
        leaf = preds.to(device).requires_grad_(True)
        loss = module.to(device)(leaf, target.to(device))
        (gradient,) = torch.autograd.grad(loss, leaf)
        assert loss.device.type == device and gradient.device.type == device
        results.append((loss.cpu(), gradient.cpu()))
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(results[0][0], results[1][0], rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=tolerance, atol=tolerance)


def test_cuda_script_and_compile():
    preds = torch.rand(10_000, device="cuda", requires_grad=True)
    target = (torch.rand(10_000, device="cuda") < 0.1).float()
    module = metricc.loss("mcc")
    expected = module(preds, target)
    (expected_gradient,) = torch.autograd.grad(expected, preds)
    for runner in (torch.jit.script(module), torch.compile(module, fullgraph=True)):
        loss = runner(preds, target)
        (gradient,) = torch.autograd.grad(loss, preds)
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gradient, expected_gradient, rtol=1e-4, atol=1e-9)
