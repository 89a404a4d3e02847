/**
 * A small fake shop (customers and orders) behind the demo business tools. Each call to
 * `createDemoShop` returns a fresh, independent copy, so refunds and address changes made in one
 * bridge (or one test) never leak into another. Dates are relative to `now` so that refund
 * eligibility stays meaningful whenever the demo runs.
 */

export interface DemoAddress {
  line1: string;
  line2?: string;
  city: string;
  postalCode: string;
  country: string;
}

export interface DemoCustomer {
  id: string;
  name: string;
  email: string;
}

export type DemoOrderStatus = 'processing' | 'shipped' | 'delivered' | 'cancelled';

export interface DemoOrder {
  id: string;
  customerId: string;
  status: DemoOrderStatus;
  items: Array<{ sku: string; name: string; quantity: number; unitPrice: number }>;
  total: number;
  currency: string;
  placedAt: string;
  shippedAt?: string;
  deliveredAt?: string;
  shippingAddress: DemoAddress;
  refunds: Array<{ id: string; amount: number; reason: string; at: string }>;
}

/** Days after delivery during which an order can be refunded. */
export const REFUND_WINDOW_DAYS = 30;

/** An in-memory shop: the only state the demo tools read and change. */
export class DemoShop {
  private refundSeq = 0;
  constructor(
    readonly customers: DemoCustomer[],
    readonly orders: DemoOrder[],
    /** The shop's clock; injectable so eligibility is testable. */
    readonly now: () => Date = () => new Date(),
  ) {}

  /** Finds an order by id, forgiving case, spaces and a leading `#`; undefined when unknown. */
  findOrder(orderId: string): DemoOrder | undefined {
    const wanted = normalizeOrderId(orderId);
    return this.orders.find((o) => o.id === wanted);
  }

  customerOf(order: DemoOrder): DemoCustomer | undefined {
    return this.customers.find((c) => c.id === order.customerId);
  }

  /** What can still be refunded on an order (total minus earlier refunds). */
  refundable(order: DemoOrder): number {
    const refunded = order.refunds.reduce((sum, r) => sum + r.amount, 0);
    return round2(order.total - refunded);
  }

  recordRefund(order: DemoOrder, amount: number, reason: string): DemoOrder['refunds'][number] {
    this.refundSeq += 1;
    const refund = { id: `RF-${order.id}-${this.refundSeq}`, amount: round2(amount), reason, at: this.now().toISOString() };
    order.refunds.push(refund);
    return refund;
  }
}

export function normalizeOrderId(orderId: string): string {
  return orderId.trim().replace(/^#/, '').toUpperCase();
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function daysBefore(now: Date, days: number): string {
  return new Date(now.getTime() - days * 86_400_000).toISOString();
}

/** A fresh shop with three customers and five orders in every state the demo needs. */
export function createDemoShop(now: () => Date = () => new Date()): DemoShop {
  const t = now();
  const customers: DemoCustomer[] = [
    { id: 'C-100', name: 'Ana Souza', email: 'ana@example.com' },
    { id: 'C-200', name: 'Ben Okafor', email: 'ben@example.com' },
    { id: 'C-300', name: 'Chloé Martin', email: 'chloe@example.com' },
  ];
  const home = (line1: string, city: string, postalCode: string, country: string): DemoAddress => ({ line1, city, postalCode, country });
  const orders: DemoOrder[] = [
    {
      id: 'A1001',
      customerId: 'C-100',
      status: 'delivered',
      items: [{ sku: 'KB-01', name: 'Mechanical keyboard', quantity: 1, unitPrice: 89 }],
      total: 89,
      currency: 'USD',
      placedAt: daysBefore(t, 12),
      shippedAt: daysBefore(t, 10),
      deliveredAt: daysBefore(t, 7),
      shippingAddress: home('12 Harbour St', 'Portland', '97201', 'US'),
      refunds: [],
    },
    {
      id: 'A1002',
      customerId: 'C-100',
      status: 'delivered',
      items: [
        { sku: 'MN-27', name: '27" monitor', quantity: 1, unitPrice: 249 },
        { sku: 'CB-HD', name: 'HDMI cable', quantity: 2, unitPrice: 10.5 },
      ],
      total: 270,
      currency: 'USD',
      placedAt: daysBefore(t, 9),
      shippedAt: daysBefore(t, 8),
      deliveredAt: daysBefore(t, 5),
      shippingAddress: home('12 Harbour St', 'Portland', '97201', 'US'),
      refunds: [],
    },
    {
      id: 'A1003',
      customerId: 'C-200',
      status: 'shipped',
      items: [{ sku: 'HP-02', name: 'Wireless headphones', quantity: 1, unitPrice: 129 }],
      total: 129,
      currency: 'USD',
      placedAt: daysBefore(t, 3),
      shippedAt: daysBefore(t, 1),
      shippingAddress: home('5 Elm Road', 'Leeds', 'LS1 4AP', 'GB'),
      refunds: [],
    },
    {
      id: 'A1004',
      customerId: 'C-200',
      status: 'processing',
      items: [{ sku: 'MS-07', name: 'Ergonomic mouse', quantity: 1, unitPrice: 45 }],
      total: 45,
      currency: 'USD',
      placedAt: daysBefore(t, 0.5),
      shippingAddress: home('5 Elm Road', 'Leeds', 'LS1 4AP', 'GB'),
      refunds: [],
    },
    {
      id: 'A1005',
      customerId: 'C-300',
      status: 'delivered',
      items: [{ sku: 'LP-14', name: 'Laptop stand', quantity: 1, unitPrice: 60 }],
      total: 60,
      currency: 'USD',
      placedAt: daysBefore(t, 70),
      shippedAt: daysBefore(t, 68),
      deliveredAt: daysBefore(t, 65),
      shippingAddress: home('8 rue des Lilas', 'Lyon', '69003', 'FR'),
      refunds: [],
    },
  ];
  return new DemoShop(customers, orders, now);
}
