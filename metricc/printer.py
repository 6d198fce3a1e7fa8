"""SymPy's Python code printer taught torch: count tensors, the guards of guards.py, and the one-op forms
(rsqrt, reciprocal, square) that make an emitted formula cheap; FloatPrinter prints the same on Python floats."""

from __future__ import annotations

from typing import Dict, List, Set

import sympy
from sympy.printing.precedence import precedence
from sympy.printing.pycode import PythonCodePrinter

from .errors import InvalidMetricError


class TorchPrinter(PythonCodePrinter):
    """Prints a SymPy expression as torch code over count tensors (tp, fp, fn, tn) and float parameters.

    names: the Python name of each symbol; tensor_symbols: those that hold tensors (the counts, and the shared
    intermediates computed from them), so that functions of constants only become full_like tensors of `like`.
    """

    # x ** (-1/2) in a product: a factor torch.rsqrt(x) (one op), not a division by torch.sqrt(x)
    rsqrt_factors = True
    functions = {"exp": "torch.exp", "log": "torch.log", "Abs": "torch.abs", "sign": "torch.sign"}

    def __init__(self, names: Dict[sympy.Symbol, str], tensor_symbols: Set[sympy.Symbol], like: str = "tp"):
        super().__init__({"strict": False, "user_functions": dict(self.functions)})
        self.names = names
        self.tensor_symbols = tensor_symbols
        self.like = like

    def is_tensor(self, expression: sympy.Expr) -> bool:
        """Whether the expression depends on a count (a tensor), not only on float parameters."""
        return any(symbol in self.tensor_symbols for symbol in expression.free_symbols)

    def _tensor_argument(self, expression: sympy.Expr) -> str:
        """A function's argument as a tensor: a constant becomes one of the counts' shape."""
        text = self._print(expression)
        return text if self.is_tensor(expression) else f"torch.full_like({self.like}, {text})"

    def _print_Symbol(self, e: sympy.Symbol) -> str:
        return self.names[e]

    def _print_number(self, e: sympy.Expr) -> str:
        value = float(e)
        return f"({value!r})" if value < 0 else repr(value)

    _print_Integer = _print_Rational = _print_Float = _print_Half = _print_Zero = _print_One = _print_NegativeOne = _print_number

    def _print_Add(self, e: sympy.Expr, order=None) -> str:
        terms = sorted(e.args, key=sympy.default_sort_key)
        # lead with a positive term: "b - a" is one tensor op, "-a + b" two
        terms.sort(key=lambda term: bool(term.as_coeff_Mul()[0].is_negative))
        text = self._print(terms[0])
        for term in terms[1:]:
            if term.as_coeff_Mul()[0].is_negative:
                text += f" - {self.parenthesize(-term, precedence(e) + 1, strict=True)}"
            else:
                text += f" + {self.parenthesize(term, precedence(e), strict=True)}"
        return text

    def _print_Mul(self, e: sympy.Expr) -> str:
        coefficient, factors = e.as_coeff_mul()
        numerator: List[sympy.Expr] = []
        denominator: List[sympy.Expr] = []
        for factor in sorted(factors, key=sympy.default_sort_key):
            rsqrt = factor.is_Pow and factor.exp == sympy.Rational(-1, 2) and self.rsqrt_factors
            if factor.is_Pow and factor.exp.is_negative and factor.exp.is_number and not rsqrt:
                denominator.append(sympy.Pow(factor.base, -factor.exp, evaluate=False) if factor.exp != -1 else factor.base)
            else:
                numerator.append(factor)
        level = precedence(e)
        if coefficient < 0:
            return f"-{self.parenthesize(sympy.Mul(-coefficient, *factors, evaluate=False), level + 1, strict=True)}"
        if coefficient == 1 and not numerator and self.is_tensor(e):
            # 1 / (a b) as torch.reciprocal(a * b): a tensor op, where 1.0 / t goes through Python's reflected division
            return f"torch.reciprocal({self._print(sympy.Mul(*denominator, evaluate=False))})"
        parts = [self.parenthesize(f, level, strict=True) for f in numerator]
        if coefficient != 1 or not parts:
            parts.insert(0, self._print(coefficient))
        text = " * ".join(parts)
        for factor in denominator:
            text += f" / {self.parenthesize(factor, level + 1, strict=True)}"
        return text

    def _print_Pow(self, e: sympy.Expr, rational=False) -> str:
        base, exponent = e.args
        if exponent == sympy.Rational(1, 2):
            return f"torch.sqrt({self._tensor_argument(base)})"
        if exponent == sympy.Rational(-1, 2):
            return f"torch.rsqrt({self._tensor_argument(base)})"
        if not self.is_tensor(base) and self.is_tensor(exponent):
            return f"torch.pow({self._print(base)}, {self._print(exponent)})"
        if self.is_tensor(base) and exponent == 2:
            return f"torch.square({self._print(base)})"
        if self.is_tensor(base) and exponent.is_Rational and exponent.is_negative:
            return f"torch.reciprocal({self._print(sympy.Pow(base, -exponent, evaluate=False))})"
        operand = self.parenthesize(base, precedence(e) + 1, strict=True)
        if exponent.is_Rational:
            magnitude = abs(exponent)
            power = str(int(magnitude)) if magnitude.is_Integer else repr(float(magnitude))
            raised = operand if magnitude == 1 else f"{operand} ** {power}"
            return f"1.0 / {raised}" if exponent.is_negative else raised
        return f"{operand} ** {self.parenthesize(exponent, precedence(e) + 1, strict=True)}"

    def _print_known_function(self, e: sympy.Expr) -> str:
        return f"{self.known_functions[type(e).__name__]}({self._tensor_argument(e.args[0])})"

    _print_exp = _print_log = _print_Abs = _print_sign = _print_known_function

    #: How each guard of guards.py is written, by class name: its argument goes in the braces.
    guard_templates = {
        "SafeDenominator": "torch.clamp({}, min=eps)",
        "SignedDenominator": "signed_clamp({}, eps)",
        "ClampAtZero": "torch.clamp({}, min=0.0)",
    }

    def _print_guard(self, e: sympy.Expr) -> str:
        return self.guard_templates[type(e).__name__].format(self._print(e.args[0]))

    _print_SafeDenominator = _print_SignedDenominator = _print_ClampAtZero = _print_guard

    def _print_Heaviside(self, e: sympy.Expr) -> str:
        return f"torch.heaviside({self._tensor_argument(e.args[0])}, torch.full_like({self.like}, 0.5))"

    def _print_MinMax(self, e: sympy.Expr) -> str:
        pairwise = "torch.minimum" if isinstance(e, sympy.Min) else "torch.maximum"
        bound = "max" if isinstance(e, sympy.Min) else "min"
        arguments = sorted(e.args, key=sympy.default_sort_key)
        tensors = [a for a in arguments if self.is_tensor(a)]
        constants = [a for a in arguments if not self.is_tensor(a)]
        text = self._print(tensors[0]) if tensors else f"torch.full_like({self.like}, {self._print(constants.pop())})"
        for other in tensors[1:]:
            text = f"{pairwise}({text}, {self._print(other)})"
        for constant in constants:
            text = f"torch.clamp({text}, {bound}={self._print(constant)})"
        return text

    _print_Min = _print_Max = _print_MinMax

    def _print_Basic(self, e: sympy.Basic) -> str:
        raise InvalidMetricError(f"metricc cannot emit code for {sympy.sstr(e)} ({type(e).__name__})")

    _print_Function = _print_Expr = _print_Basic


class FloatPrinter(TorchPrinter):
    """The same expression over Python floats (tp, fp, fn, tn as numbers): for a batch whose counts are single
    numbers, each operation is then a few nanoseconds instead of a tensor operation's microseconds.

    Where torch would return inf or NaN (0/0, the log of 0, an overflow) math raises ArithmeticError or
    ValueError, and a non-integer power of a negative number goes through math.pow, which raises too, rather
    than turning complex: the caller then falls back to the tensor formula.
    """

    rsqrt_factors = False
    functions = {"exp": "math.exp", "log": "math.log", "Abs": "abs", "sign": "sign_float"}
    guard_templates = {"SafeDenominator": "max({}, eps)", "SignedDenominator": "signed_clamp_float({}, eps)", "ClampAtZero": "max({}, 0.0)"}

    def __init__(self, names: Dict[sympy.Symbol, str]):
        super().__init__(names, set())

    def _tensor_argument(self, expression: sympy.Expr) -> str:
        return self._print(expression)

    def _print_Pow(self, e: sympy.Expr, rational=False) -> str:
        base, exponent = e.args
        if exponent == sympy.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        if exponent == sympy.Rational(-1, 2):
            return f"(1.0 / math.sqrt({self._print(base)}))"
        if exponent.is_Integer:
            operand = self.parenthesize(base, precedence(e) + 1, strict=True)
            raised = operand if abs(exponent) == 1 else f"{operand} ** {abs(int(exponent))}"
            return f"(1.0 / {raised})" if exponent.is_negative else raised
        return f"math.pow({self._print(base)}, {self._print(exponent)})"

    def _print_Heaviside(self, e: sympy.Expr) -> str:
        return f"heaviside_float({self._print(e.args[0])})"

    def _print_MinMax(self, e: sympy.Expr) -> str:
        function = "min" if isinstance(e, sympy.Min) else "max"
        return f"{function}({', '.join(self._print(a) for a in sorted(e.args, key=sympy.default_sort_key))})"

    _print_Min = _print_Max = _print_MinMax


class TritonPrinter(TorchPrinter):
    """The same expression in Triton's language (tl) on blocks of counts, for the GPU path's formula launch: a
    parameter is a block of the counts' dtype and a number a Python float, which Triton broadcasts without rounding
    (the emitter makes an output that reads no count a block with zeros_like). Powers are products (integer exponents, as torch computes them), sqrt and
    rsqrt, or exp(e log x) (which is NaN for x < 0, where torch.pow of a fractional exponent is NaN too); x ** 1.5
    is x * sqrt(x)."""

    rsqrt_factors = True
    functions = {"exp": "tl.exp", "log": "tl.log", "Abs": "tl.abs"}
    #: Integer powers up to this are written as products (as exact as torch.pow's); higher ones go through exp and
    #: log of |x|, with the sign.
    product_powers = 16
    guard_templates = {
        "SafeDenominator": "tl.maximum({}, eps)",
        "SignedDenominator": "signed_clamp_in_triton({}, eps)",
        "ClampAtZero": "tl.maximum({}, 0.0)",
    }
    def _tensor_argument(self, expression: sympy.Expr) -> str:
        return self._print(expression)

    def _print(self, expr, **settings) -> str:
        # a function of numbers alone (log(2), exp(1/3), sqrt(2)) is one Python float, evaluated in float64 here:
        # Triton would make it a float32 tensor before taking the function
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Atom:
            try:
                return self._print_number(expr)
            except TypeError:  # a guard of a number, which float() does not know: printed as it is
                pass
        return super()._print(expr, **settings)

    def _print_Mul(self, e: sympy.Expr) -> str:
        coefficient, factors = e.as_coeff_mul()
        if coefficient == 1 and all(f.is_Pow and f.exp.is_negative and f.exp.is_number for f in factors):
            return f"1.0 / ({self._print(sympy.Mul(*[1 / f for f in factors], evaluate=False))})"
        return super()._print_Mul(e)

    def _print_Pow(self, e: sympy.Expr, rational=False) -> str:
        base, exponent = e.args
        if exponent == sympy.Rational(1, 2):
            return f"tl.sqrt({self._print(base)})"
        if exponent == sympy.Rational(-1, 2):
            return f"tl.rsqrt({self._print(base)})"
        if exponent.is_Integer and abs(exponent) <= self.product_powers:
            operand = self.parenthesize(base, precedence(e) + 1, strict=True)
            product = " * ".join([operand] * abs(int(exponent)))
            return f"(1.0 / ({product}))" if exponent.is_negative else f"({product})"
        if exponent.is_Rational and exponent.q == 2 and abs(exponent) <= self.product_powers:
            whole = sympy.Pow(base, abs(exponent) - sympy.Rational(1, 2), evaluate=False)
            root = f"{self._print(whole)} * tl.sqrt({self._print(base)})"
            return f"(1.0 / ({root}))" if exponent.is_negative else f"({root})"
        if exponent.is_Integer:
            magnitude = f"tl.exp({self._print(abs(exponent))} * tl.log(tl.abs({self._print(base)})))"
            sign = f"tl.where({self._print(base)} < 0.0, {(-1.0) ** int(exponent)!r}, 1.0)"
            return f"({sign} / {magnitude})" if exponent.is_negative else f"({sign} * {magnitude})"
        logarithm = self._print(sympy.log(base)) if base.is_number else f"tl.log({self._print(base)})"
        return f"tl.exp({self.parenthesize(exponent, precedence(e), strict=True)} * {logarithm})"

    def _print_sign(self, e: sympy.Expr) -> str:
        argument = self._print(e.args[0])
        return f"tl.where({argument} > 0.0, 1.0, tl.where({argument} < 0.0, -1.0, 0.0))"

    def _print_Heaviside(self, e: sympy.Expr) -> str:
        argument = self._print(e.args[0])
        return f"tl.where({argument} > 0.0, 1.0, tl.where({argument} < 0.0, 0.0, 0.5))"

    def _print_MinMax(self, e: sympy.Expr) -> str:
        pairwise = "tl.minimum" if isinstance(e, sympy.Min) else "tl.maximum"
        arguments = sorted(e.args, key=sympy.default_sort_key)
        text = self._print(arguments[0])
        for other in arguments[1:]:
            text = f"{pairwise}({text}, {self._print(other)})"
        return text

    _print_Min = _print_Max = _print_MinMax
